import asyncio
import json

import pytest

import compound
from compound import ScriptedBackend
from compound.store.traces import trace_store
from compound.tools.agent import ToolAgent
from compound.tools.base import ToolArgumentError, tool
from compound.tools.policy import Policy


def actions(*steps):
    """A scripted model that emits these actions in order."""
    return ScriptedBackend([json.dumps(s) for s in steps], cycle=False)


def make_tools(log):
    @tool
    def refund(order_id: int, amount: float) -> str:
        """Refund an order."""
        log.append(("refund", order_id, amount))
        return f"refunded {amount} on {order_id}"

    @tool
    def lookup(order_id: int) -> dict:
        """Look up an order."""
        log.append(("lookup", order_id))
        return {"order_id": order_id, "total": 40.0}

    return refund, lookup


def test_a_denied_tool_never_runs_and_the_model_sees_the_denial():
    log = []
    refund, lookup = make_tools(log)
    model = actions(
        {"thought": "check", "tool": "lookup", "arguments": {"order_id": 7}},
        {"thought": "refund it", "tool": "refund", "arguments": {"order_id": 7, "amount": 40.0}},
        {"thought": "done", "tool": "finish", "answer": "could not refund"},
    )
    policy = Policy().allow("lookup").deny("refund", "refunds need a human")
    agent = ToolAgent([refund, lookup], model=model, policy=policy)
    with compound.start_run("agent") as run:
        result = asyncio.run(agent.arun("refund order 7"))
    assert log == [("lookup", 7)]  # refund never executed
    assert result.answer == "could not refund"
    assert result.steps[1].decision.allowed is False
    assert "refunds need a human" in model.requests[2].messages[-1].content  # the denial came back as data
    spans = trace_store().run_spans(run.id)
    perms = {s["name"]: s["attrs"]["decision"] for s in spans if s["kind"] == "permission"}
    assert perms == {"lookup": "allow", "refund": "deny"}
    assert [s["name"] for s in spans if s["kind"] == "tool"] == ["lookup"]


def test_argument_constraints_and_ask_callbacks():
    log = []
    refund, lookup = make_tools(log)
    asked = []

    def approve(name, args):
        asked.append((name, args))
        return args["order_id"] == 1

    policy = Policy().ask("refund", approve, lambda a: a["amount"] <= 50 or "refunds over 50 are not allowed")

    async def decide(args):
        return await policy.decide("refund", args)

    assert asyncio.run(decide({"order_id": 1, "amount": 80})).reason == "refunds over 50 are not allowed"
    assert asked == []  # a failed constraint never reaches the callback
    assert asyncio.run(decide({"order_id": 1, "amount": 20})).allowed
    assert not asyncio.run(decide({"order_id": 2, "amount": 20})).allowed
    assert not asyncio.run(policy.decide("lookup", {"order_id": 1})).allowed  # default deny


def test_denied_calls_never_run_over_many_attempts():
    log = []
    refund, _ = make_tools(log)
    policy = Policy().allow("refund", lambda a: a["amount"] < 10 or "too much")
    for i in range(60):
        amount = float(10 + i)
        model = actions(
            {"thought": "", "tool": "refund", "arguments": {"order_id": i, "amount": amount}},
            {"thought": "", "tool": "finish", "answer": "ok"},
        )
        asyncio.run(ToolAgent([refund], model=model, policy=policy).arun("x"))
    assert log == []


def test_step_and_tool_call_caps():
    log = []
    _, lookup = make_tools(log)
    model = ScriptedBackend([json.dumps({"thought": "", "tool": "lookup", "arguments": {"order_id": 1}})])
    agent = ToolAgent([lookup], model=model, policy=Policy(default="allow"), max_steps=5, max_tool_calls=2)
    result = asyncio.run(agent.arun("loop forever"))
    assert result.stopped == "step limit" and len(result.steps) == 5
    assert len(log) == 2  # calls past the cap were refused
    assert "tool-call limit" in result.steps[2].decision.reason


def test_bad_arguments_are_reported_to_the_model_not_run():
    log = []
    refund, _ = make_tools(log)
    with pytest.raises(ToolArgumentError, match="order_id"):
        refund.check({"order_id": "seven", "amount": 1})
    model = actions(
        {"thought": "", "tool": "refund", "arguments": {"order_id": "seven", "amount": 1}},
        {"thought": "", "tool": "finish", "answer": "gave up"},
    )
    result = asyncio.run(ToolAgent([refund], model=model, policy=Policy(default="allow")).arun("x"))
    assert log == [] and "bad arguments" in result.steps[0].observation["error"]


def test_action_schema_only_offers_known_tools():
    refund, lookup = make_tools([])
    agent = ToolAgent([refund, lookup], model=ScriptedBackend(["{}"]))
    schema = agent.action_type.model_json_schema()
    assert set(schema["properties"]["tool"]["enum"]) == {"refund", "lookup", "finish"}
