"""Tools that hang are stopped, written as an attacker would: a tool that sleeps forever, ignores
cancellation, dies, or runs past a budget's deadline.

Every tool call has a time limit (the tool's own, else ``ToolAgent(tool_timeout_s=)``, else 30 s); an async
tool is cancelled, a ``blocking=True`` tool runs in a spawned process that is killed (its pid is gone
afterwards), and ``budget(wall_s=)`` interrupts a running tool or agent step at its deadline. The model is
told when a tool timed out."""

import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

import compound
from compound import ScriptedBackend
from compound.core.errors import BudgetExceededError, InputError
from compound.tools.agent import ToolAgent
from compound.tools.base import Tool
from compound.tools.policy import Policy, guarded_call

sys.path.insert(0, str(Path(__file__).parent / "relio_site"))
import relio_tools  # noqa: E402

ALLOW = Policy(default="allow")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def wait_pid(pid_file: Path) -> int:
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return int(pid_file.read_text())


def agent(tools, *steps, latency_s=0.02, **kw):
    model = ScriptedBackend([json.dumps(s) for s in steps], cycle=False, latency_s=latency_s)
    return ToolAgent(tools, model=model, policy=ALLOW, **kw), model


FINISH = {"thought": "done", "tool": "finish", "answer": "over"}


def test_a_hanging_blocking_tool_is_killed_at_its_timeout(tmp_path):
    pid_file = tmp_path / "pid"
    t0 = time.monotonic()
    out = asyncio.run(guarded_call(relio_tools.hang, {"seconds": 60, "pid_file": str(pid_file)}, ALLOW))[1]
    assert time.monotonic() - t0 < 20  # a process start plus the 0.5 s limit, not 60 s
    assert "took longer than 0.5 s" in out["error"] and "stopped" in out["error"]
    assert not alive(wait_pid(pid_file))


def test_a_blocking_tool_keeps_its_process_between_calls():
    t = Tool(relio_tools.whoami, blocking=True)

    async def twice():
        return await t.acall({}), await t.acall({})

    first, second = asyncio.run(twice())
    assert first == second != os.getpid()


def test_after_a_kill_the_next_call_gets_a_fresh_process(tmp_path):
    async def run():
        out = await guarded_call(relio_tools.hang, {"seconds": 60, "pid_file": str(tmp_path / "a")}, ALLOW)
        again = await relio_tools.hang.acall({"seconds": 0, "pid_file": str(tmp_path / "b")})
        return out[1], again

    timed_out, again = asyncio.run(run())
    assert "took longer" in timed_out["error"] and again == "slept 0.0"
    assert (tmp_path / "a").read_text() != (tmp_path / "b").read_text()


@pytest.mark.parametrize(
    "kind,needle", [("exit", "exit code 7"), ("system-exit", "SystemExit"), ("value", "ValueError")]
)
def test_a_blocking_tool_that_dies_or_raises_is_a_failure_not_a_hang(kind, needle):
    t = Tool(relio_tools.explode, blocking=True, timeout_s=20)
    out = asyncio.run(guarded_call(t, {"kind": kind}, ALLOW))[1]
    assert needle in out["error"]


def test_a_blocking_tools_result_travels_as_json():
    out = Tool(relio_tools.odd_result, blocking=True)()
    assert isinstance(out["a set"], str) and out["bytes"] == "b'x'"


@pytest.mark.parametrize("fn", [lambda: 1, "local"], ids=["lambda", "local function"])
def test_a_blocking_tool_must_be_importable(fn):
    if fn == "local":

        def fn() -> int:
            return 1

    with pytest.raises(InputError, match="top level of an importable module"):
        Tool(fn, blocking=True)


def test_an_async_tool_cannot_be_blocking():
    async def fetch() -> int:
        return 1

    with pytest.raises(InputError, match="async"):
        Tool(fetch, blocking=True)


def test_an_async_tool_is_cancelled_at_the_agents_default_timeout():
    cancelled = []

    async def wait_forever() -> str:
        """Never returns."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "never"

    a, model = agent(
        [Tool(wait_forever)], {"thought": "t", "tool": "wait_forever", "arguments": {}}, FINISH, tool_timeout_s=0.3
    )
    t0 = time.monotonic()
    result = asyncio.run(a.arun("go"))
    assert time.monotonic() - t0 < 5 and result.answer == "over" and cancelled == [True]
    told = model.requests[1].messages[-1].content
    assert "took longer than 0.3 s" in told and "wait_forever" in told


def test_a_tools_own_timeout_wins_over_the_agents():
    async def slow() -> str:
        """Slow."""
        await asyncio.sleep(0.4)
        return "done"

    a, model = agent(
        [Tool(slow, timeout_s=5)], {"thought": "t", "tool": "slow", "arguments": {}}, FINISH, tool_timeout_s=0.1
    )
    asyncio.run(a.arun("go"))
    assert '"done"' in model.requests[1].messages[-1].content


def test_a_sync_tool_on_a_thread_is_abandoned_and_says_so():
    def stuck() -> str:
        time.sleep(3)
        return "late"

    t0 = time.monotonic()
    out = asyncio.run(guarded_call(Tool(stuck, timeout_s=0.2), {}, ALLOW))[1]
    assert time.monotonic() - t0 < 2 and "abandoned" in out["error"] and "took longer than 0.2 s" in out["error"]


def test_a_tool_that_raises_timeouterror_itself_is_its_own_failure():
    async def upstream() -> str:
        raise TimeoutError("the upstream API timed out")

    out = asyncio.run(guarded_call(Tool(upstream, timeout_s=10), {}, ALLOW))[1]
    assert out["error"] == "the upstream API timed out"


def test_a_budget_deadline_interrupts_a_running_async_tool():
    async def long() -> str:
        await asyncio.sleep(30)
        return "late"

    t0 = time.monotonic()
    with pytest.raises(BudgetExceededError) as caught, compound.budget(wall_s=0.4):
        Tool(long, timeout_s=60)()
    assert caught.value.resource == "wall_s" and time.monotonic() - t0 < 3


def test_a_budget_deadline_kills_a_running_blocking_tool(tmp_path):
    pid_file = tmp_path / "pid"
    t = Tool(relio_tools.hang.fn, blocking=True, timeout_s=60)
    t(seconds=0)  # not under the budget: the process starts here
    with pytest.raises(BudgetExceededError), compound.budget(wall_s=0.5):
        t(seconds=60, pid_file=str(pid_file))
    assert not alive(wait_pid(pid_file))


def test_a_budget_deadline_interrupts_an_agent_step_waiting_on_the_model():
    a, _ = agent([], FINISH, latency_s=30)  # the model takes 30 s to answer
    t0 = time.monotonic()
    with pytest.raises(BudgetExceededError), compound.budget(wall_s=0.5):
        a(task="go")
    assert time.monotonic() - t0 < 5


def test_a_budget_deadline_ends_the_agent_run_instead_of_telling_the_model():
    async def long() -> str:
        """Long."""
        await asyncio.sleep(30)
        return "late"

    a, model = agent([Tool(long)], {"thought": "t", "tool": "long", "arguments": {}}, FINISH)
    with pytest.raises(BudgetExceededError), compound.budget(wall_s=0.5):
        a(task="go")
    assert len(model.requests) == 1  # no further turn after the deadline


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "5"], ids=repr)
def test_a_bad_agent_tool_timeout_is_refused(value):
    with pytest.raises(InputError, match="tool_timeout_s"):
        ToolAgent([], model=ScriptedBackend(["{}"]), tool_timeout_s=value)
