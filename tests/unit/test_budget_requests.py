"""Budgets count every request that reaches the server, not one per call: a constraint the server
refused and sent again, a retry after 503, a dropped connection or a timeout, and a typed call's repair,
all at the default concurrency against a real HTTP server on loopback (``openai_fake``)."""

import asyncio

import pytest
from pydantic import BaseModel

import compound
from compound import BudgetExceededError, OutputParseError
from compound.models.openai_compat import OpenAIBackend
from compound.models.typed import acall_typed

from .openai_fake import FakeServer

pytestmark = pytest.mark.real_backend  # a real backend class against a local fake server

OVERLOADED = (503, {"Retry-After": "0"}, {"error": {"message": "overloaded"}})


class Label(BaseModel):  # the fake answers a constrained request with a city: every reply needs a repair
    label: str


def twenty_typed_calls(server: FakeServer, **limits):
    model = OpenAIBackend("local-model", base_url=server.url)

    async def one(i):
        try:
            return await acall_typed(Label, f"row {i}", model=model, max_tokens=8)
        except (BudgetExceededError, OutputParseError):
            return None

    async def main():
        with compound.budget(**limits) as b:
            await asyncio.gather(*(one(i) for i in range(20)))
        return b

    with compound.context(
        max_retries=3, request_timeout_s=0.4, prices={"local-model": {"input_per_mtok": 10.0, "output_per_mtok": 10.0}}
    ):
        return asyncio.run(main())


def unknown_llama_cpp_py(script=()):
    """llama_cpp.server behind something that hides what it is: the first requests ask for json_schema,
    are refused with a 500 and are sent again as json_object."""
    return FakeServer("llama-cpp-py", listing=False, script=script, latency_s=0.03)


def test_a_call_cap_counts_refused_retried_and_repair_requests():
    script = [OVERLOADED, "drop", OVERLOADED, ("sleep", 0.6)]
    s = unknown_llama_cpp_py(script=script)
    try:
        b = twenty_typed_calls(s, calls=12)
        # the cap is on requests sent (one whose connection failed may not have arrived: counted anyway);
        # every scripted refusal, drop and timeout was met, and more requests besides (how many more
        # depends on timing: a timed-out request holds its reservation until it ends)
        assert len(script) < len(s.posts) <= b.used.calls <= 12
        assert b.reserved_calls == 0 and b.reserved_tokens == 0
    finally:
        s.close()


@pytest.mark.parametrize("limit", [{"tokens": 300}, {"cost_usd": 0.003}])
def test_token_and_money_caps_hold_for_what_the_server_computed(limit):
    # the timed-out requests were computed by the server and their tokens never reported: a budget
    # must have charged them (their worst case), or the server did more than the cap allowed
    s = FakeServer("llama-cpp-py", script=[("sleep", 0.6)] * 3, latency_s=0.03)
    try:
        b = twenty_typed_calls(s, **limit)
        assert s.served_tokens > 0
        assert s.served_tokens <= 300  # the fake reports 18 tokens a reply; 300 tokens cost $0.003
        assert b.used.total_tokens >= s.served_tokens
        assert b.reserved_calls == 0
    finally:
        s.close()
