"""Tools from MCP servers, through the official ``mcp`` package. MCP tools go through the same
permission policies and traces as Python tools.

    async with mcp_stdio_tools("python", ["server.py"]) as tools:
        agent = ToolAgent(tools, policy=Policy().allow("search"))
        answer = await agent.acall(task="...")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import create_model

from compound.core.errors import ToolError
from compound.tools.base import Tool

_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _args_model(name: str, schema: dict[str, Any]) -> Any:
    required = set(schema.get("required", []))
    fields = {}
    for prop, spec in schema.get("properties", {}).items():
        py = _JSON_TYPES.get(spec.get("type"), Any)
        fields[prop] = (py, ...) if prop in required else (py | None, spec.get("default"))
    return create_model(f"{name}_args", **fields)


def _field(obj: Any, snake: str, camel: str) -> Any:
    """mcp 2.x names fields in snake_case, 1.x in camelCase: read either."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


async def tools_from_session(session: Any) -> list[Tool]:
    """Wrap every tool an initialized ``mcp.ClientSession`` lists."""
    listed = await session.list_tools()
    tools = []
    for t in listed.tools:

        async def call(_name: str = t.name, **arguments: Any) -> Any:
            result = await session.call_tool(_name, {k: v for k, v in arguments.items() if v is not None})
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            if _field(result, "is_error", "isError"):
                raise ToolError(f"MCP tool {_name!r} failed: {text}")
            structured = _field(result, "structured_content", "structuredContent")
            return structured if structured is not None else text

        tools.append(
            Tool(
                call,
                t.name,
                t.description or t.name,
                _args_model(t.name, _field(t, "input_schema", "inputSchema") or {}),
            )
        )
    return tools


@asynccontextmanager
async def mcp_stdio_tools(
    command: str, args: list[str] | None = None, env: dict[str, str] | None = None
) -> AsyncIterator[list[Tool]]:
    """Start an MCP server over stdio and yield its tools; the server stops when the block ends."""
    try:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
    except ImportError as e:
        from compound.core.errors import ConfigurationError

        raise ConfigurationError("MCP support needs the mcp package: pip install 'compound[mcp]'") from e
    params = StdioServerParameters(command=command, args=list(args or []), env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield await tools_from_session(session)
