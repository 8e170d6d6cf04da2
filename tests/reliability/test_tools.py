"""Hostile tools and approvers: only an explicit yes approves, nothing a tool or approver raises ends the
host, an unknown tool is answered to the model, and slow or huge tools are bounded."""

import asyncio
import json
import math
import time

import pytest

from compound import ScriptedBackend
from compound.core.errors import InputError
from compound.tools.agent import ToolAgent
from compound.tools.base import Tool, tool
from compound.tools.policy import Decision, Policy, guarded_call


def _agent(tools, policy, *steps):
    model = ScriptedBackend([json.dumps(s) for s in steps], cycle=False, latency_s=0.02)
    return ToolAgent(tools, model=model, policy=policy), model


def _refund_tool(log):
    @tool
    def refund(order_id: int) -> str:
        """Refund an order."""
        log.append(order_id)
        return f"refunded {order_id}"

    return refund


_CALL = {"thought": "refund", "tool": "refund", "arguments": {"order_id": 7}}
_FINISH = {"thought": "done", "tool": "finish", "answer": "over"}


def _run_with_approver(approver):
    log = []
    agent, model = _agent([_refund_tool(log)], Policy().ask("refund", approver), _CALL, _FINISH)
    result = asyncio.run(agent.arun("refund order 7"))
    return log, result, model


class _Truthy:
    def __bool__(self):
        return True


_NOT_YES = ["yes", "no", "true", "True", "allow", "", "0", 1, 0, 1.0, -1, None, [True], (True,), {"allowed": True}]
_NOT_YES += [_Truthy(), object(), "approved"]


@pytest.mark.parametrize("answer", _NOT_YES, ids=repr)
def test_anything_but_an_explicit_yes_denies(answer):
    log, result, model = _run_with_approver(lambda name, args: answer)
    assert log == []  # the tool never ran
    assert result.steps[0].decision.allowed is False
    assert "only True approves" in model.requests[1].messages[-1].content  # the model sees why


@pytest.mark.parametrize("answer", [True, Decision(True, "ok by a human", "ui")], ids=["True", "Decision"])
def test_an_explicit_yes_approves(answer):
    log, result, _ = _run_with_approver(lambda name, args: answer)
    assert log == [7] and result.steps[0].decision.allowed is True


@pytest.mark.parametrize("answer", [False, Decision(False, "a human said no", "ui")], ids=["False", "Decision"])
def test_an_explicit_no_denies(answer):
    log, result, _ = _run_with_approver(lambda name, args: answer)
    assert log == [] and result.steps[0].decision.allowed is False


@pytest.mark.parametrize("answer", [True, "yes", None], ids=repr)
def test_async_approvers_follow_the_same_rule(answer):
    async def approver(name, args):
        await asyncio.sleep(0.01)
        return answer

    log, result, _ = _run_with_approver(approver)
    assert (log == [7]) is (answer is True)


@pytest.mark.parametrize(
    "error", [ValueError("bad"), RuntimeError("down"), KeyboardInterrupt(), SystemExit(3), RecursionError()], ids=repr
)
def test_an_approver_that_raises_denies_and_the_model_sees_it(error):
    def approver(name, args):
        raise error

    log, result, model = _run_with_approver(approver)
    assert log == [] and result.answer == "over"
    denial = model.requests[1].messages[-1].content
    assert "approver raised" in denial and type(error).__name__ in denial


@pytest.mark.parametrize("verdict", [1, None, "yes", [], SystemExit(1)], ids=repr)
def test_a_constraint_passes_only_on_true(verdict):
    def constraint(args):
        if isinstance(verdict, BaseException):
            raise verdict
        return verdict

    decision = asyncio.run(Policy().allow("refund", constraint).decide("refund", {"order_id": 1}))
    assert decision.allowed is False


@pytest.mark.parametrize("name", ["delete_everything", "", "refund; rm -rf /", "FINISH", "Refund"])
def test_an_unknown_tool_name_is_answered_to_the_model(name):
    log = []
    agent, model = _agent(
        [_refund_tool(log)], Policy().allow("refund"), {"thought": "?", "tool": name, "arguments": {}}, _CALL, _FINISH
    )
    result = asyncio.run(agent.arun("refund order 7"))
    assert result.answer == "over" and log == [7]  # the run went on to the real tool and finished
    assert "there is no tool named" in model.requests[1].messages[-1].content


@pytest.mark.parametrize("error", [SystemExit(0), SystemExit(2), KeyboardInterrupt(), BaseException("raw")], ids=repr)
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_tool_raising_base_exceptions_cannot_end_the_host(kind, error):
    if kind == "sync":

        def boom() -> str:
            raise error

    else:

        async def boom() -> str:
            raise error

    result = asyncio.run(guarded_call(Tool(boom), {}, Policy(default="allow")))[1]
    assert type(error).__name__ in result["error"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_slow_tool_is_stopped_at_its_timeout(kind):
    if kind == "sync":

        def slow() -> str:
            time.sleep(1.5)
            return "late"

    else:

        async def slow() -> str:
            await asyncio.sleep(30)
            return "late"

    t0 = time.monotonic()
    result = asyncio.run(guarded_call(Tool(slow, timeout_s=0.2), {}, Policy(default="allow")))[1]
    assert time.monotonic() - t0 < 1.4
    assert "longer than 0.2 s" in result["error"]


def test_a_huge_result_reaches_the_model_capped():
    log = []

    @tool(max_result_chars=1000)
    def dump() -> str:
        log.append(1)
        return "x" * 1_000_000

    agent, model = _agent([dump], Policy().allow("dump"), {"thought": "", "tool": "dump", "arguments": {}}, _FINISH)
    asyncio.run(agent.arun("dump"))
    observation = model.requests[1].messages[-1].content
    assert log == [1] and len(observation) < 1500 and "1000002 characters" in observation


def test_a_small_result_is_unchanged():
    t = Tool(lambda: {"a": 1}, name="small")
    assert asyncio.run(guarded_call(t, {}, Policy(default="allow")))[1] == {"a": 1}


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "5", True])
def test_bad_timeouts_are_refused(value):
    with pytest.raises(InputError, match="timeout_s"):
        Tool(lambda: 1, name="t", timeout_s=value)


def test_no_timeout_means_the_callers_default():
    t = Tool(lambda: 1, name="t", timeout_s=None)
    assert t.limit_s() == 30.0 and t.limit_s(2.5) == 2.5 and Tool(lambda: 1, name="u", timeout_s=4).limit_s(2.5) == 4


@pytest.mark.parametrize("value", [0, -5, 1.5, "100", False])
def test_bad_result_caps_are_refused(value):
    with pytest.raises(InputError, match="max_result_chars"):
        Tool(lambda: 1, name="t", max_result_chars=value)


@pytest.mark.parametrize("arguments", ["rm -rf /", 5, [1, 2], None], ids=repr)
def test_arguments_that_are_not_an_object_are_answered_to_the_model(arguments):
    log = []
    bad = {"thought": "?", "tool": "refund", "arguments": arguments}
    agent, model = _agent([_refund_tool(log)], Policy().allow("refund"), bad, _CALL, _FINISH)
    result = asyncio.run(agent.arun("refund order 7"))
    assert result.answer == "over" and log == [7]
    assert "must be a JSON object" in model.requests[1].messages[-1].content
