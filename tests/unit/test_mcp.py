import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from compound import ScriptedBackend
from compound.tools.agent import ToolAgent
from compound.tools.policy import Policy

pytest.importorskip("mcp", reason="needs the mcp extra: pip install 'compound[mcp]'")
SERVER = str(Path(__file__).parent.parent / "fixtures" / "mcp_server.py")


def test_mcp_tools_run_under_the_policy(tmp_path):
    from compound.tools.mcp import mcp_stdio_tools

    log = tmp_path / "calls.log"
    log.touch()
    model = ScriptedBackend(
        [
            json.dumps(a)
            for a in [
                {"thought": "", "tool": "add", "arguments": {"a": 2, "b": 3}},
                {"thought": "", "tool": "delete_everything", "arguments": {"confirm": True}},
                {"thought": "", "tool": "finish", "answer": "5"},
            ]
        ],
        cycle=False,
    )

    async def main():
        env = {**os.environ, "MCP_TEST_LOG": str(log)}
        async with mcp_stdio_tools(sys.executable, [SERVER], env=env) as tools:
            assert {t.name for t in tools} == {"add", "delete_everything"}
            agent = ToolAgent(tools, model=model, policy=Policy().allow("add"))
            return await agent.arun("add 2 and 3")

    result = asyncio.run(main())
    assert result.answer == "5"
    assert str(result.steps[0].observation) in ("5", "{'result': 5}")
    assert result.steps[1].decision.allowed is False
    assert log.read_text().splitlines() == ["add 2 3"]  # the denied tool never ran on the server
