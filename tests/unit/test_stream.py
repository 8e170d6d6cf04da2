"""Streamed calls go through the same cache, budget, usage and trace steps as whole calls."""

import asyncio
import gc
import json
import time

import pydantic
import pytest

import compound
from compound import BudgetExceededError, OutputParseError, Predict, ScriptedBackend
from compound.store.traces import trace_store

REPLY = "Dear Ana, lunch moved to Friday at noon. See you there, Ben"


def model(**kw):
    return ScriptedBackend(lambda r: REPLY, latency_s=0.2, **kw)


def test_deltas_arrive_before_the_reply_ends_and_join_to_the_whole_text():
    m = model()
    t0 = time.perf_counter()
    with m.stream("write", max_tokens=100) as s:
        arrivals = [(time.perf_counter() - t0, d) for d in s]
    assert len(arrivals) > 5
    assert "".join(d for _, d in arrivals) == REPLY
    assert arrivals[0][0] < 0.15 < arrivals[-1][0]  # the first word long before the last
    assert s.generation is not None and s.generation.text == REPLY
    assert s.text == REPLY and list(s) == []  # read to its end, it stays ended
    whole = model(model="other").generate("write", max_tokens=100)
    assert s.generation.usage.completion_tokens == whole.usage.completion_tokens
    assert s.generation.usage.prompt_tokens == whole.usage.prompt_tokens


def test_a_completed_stream_is_cached_and_a_cached_reply_streams():
    m = model()
    assert m.stream("write", max_tokens=100).text == REPLY
    assert len(m.requests) == 1
    again = m.stream("write", max_tokens=100)
    assert list(again) == [REPLY]
    assert again.generation.cached and len(m.requests) == 1
    assert m.generate("write", max_tokens=100).cached  # generate sees the streamed reply


def test_a_stream_dropped_halfway_cancels_releases_the_budget_and_caches_nothing():
    m = model()
    with compound.budget(tokens=1000) as b:
        s = m.stream("write", max_tokens=100)
        first = next(s)
        s.close()
        assert b.reserved_tokens == 0 and b.reserved_calls == 0
        assert 0 < b.used.completion_tokens < m.generate("write", max_tokens=100, cache=False).usage.completion_tokens
    assert first and s.generation is None
    assert m.in_flight == 0  # the backend stopped generating
    cancelled = [sp for sp in trace_store().list(50) if sp["status"] == "cancelled"]
    assert len(cancelled) == 1 and "closed before the reply ended" in cancelled[0]["attrs"]["error"]
    fresh = m.stream("write", max_tokens=100)
    assert fresh.text == REPLY and not fresh.generation.cached  # nothing half-written was cached


def test_a_stream_left_unreferenced_is_cancelled_when_collected():
    m = model()
    with compound.budget(tokens=1000) as b:
        s = m.stream("write", max_tokens=100)
        next(s)
        del s
        gc.collect()
        assert b.reserved_calls == 0 and m.in_flight == 0


def test_a_stream_reserves_up_front_and_fails_like_a_whole_call_when_it_cannot_fit():
    m = model()
    with compound.budget(tokens=10):
        with pytest.raises(BudgetExceededError):
            next(m.stream("write", max_tokens=100))
    assert m.requests == []


def test_budget_settles_the_real_usage_of_a_completed_stream():
    m = model()
    with compound.budget(tokens=1000) as b:
        g = m.stream("write", max_tokens=100)
        text = g.text
        assert b.used.total_tokens == g.generation.usage.total_tokens and b.reserved_tokens == 0
    assert text == REPLY


def test_usage_trackers_see_streamed_calls():
    with compound.track_usage() as u:
        text = model().stream("write", max_tokens=100).text
    assert text == REPLY and u.physical.calls == 1 and u.physical.completion_tokens > 0


def test_async_stream_deltas_cache_and_cancellation():
    m = model()

    async def main():
        s = m.astream("write", max_tokens=100)
        parts = [d async for d in s]
        assert "".join(parts) == REPLY and len(parts) > 5 and s.generation.text == REPLY
        cached = m.astream("write", max_tokens=100)
        assert [d async for d in cached] == [REPLY] and cached.generation.cached
        with compound.budget(tokens=1000) as b:
            async with m.astream("write", max_tokens=100, cache=False) as s2:
                async for _ in s2:
                    break
            assert b.reserved_calls == 0 and s2.generation is None
        assert m.in_flight == 0

    asyncio.run(main())
    assert any(sp["status"] == "cancelled" for sp in trace_store().list(50))


def test_a_backend_without_its_own_stream_hook_streams_its_whole_reply_once():
    class Whole(compound.ScriptedBackend):
        kind = "whole"
        _stream = compound.Backend._stream

    s = Whole(["hello there"]).stream("x", max_tokens=20)
    assert list(s) == ["hello there"] and s.generation.text == "hello there"


def test_a_failing_backend_raises_from_the_stream_and_settles():
    def boom(r):
        raise RuntimeError("model crashed")

    with compound.budget(tokens=1000) as b:
        with pytest.raises(RuntimeError, match="model crashed"):
            list(ScriptedBackend(boom).stream("x", max_tokens=20))
        assert b.reserved_calls == 0


class Draft(pydantic.BaseModel):
    subject: str
    body: str


DRAFT = '{"subject": "Lunch on Friday", "body": "Hi Ana, lunch moved to Friday at noon. Best, Ben"}'


def test_a_typed_step_streams_partial_objects_and_validates_at_the_end():
    step = Predict("box -> subject, body", model=ScriptedBackend([DRAFT], latency_s=0.1))
    with step.stream(box="Ana, lunch Friday") as s:
        partials = list(s)
    assert len(partials) > 5 and "".join(p.delta for p in partials) == DRAFT
    assert {p.candidate for p in partials} == {0} and {p.attempt for p in partials} == {0}
    bodies = [p.value.get("body") for p in partials if isinstance(p.value, dict) and "body" in p.value]
    assert len(bodies) > 2 and bodies[0] != bodies[-1]  # the body grows while the JSON is still open
    assert bodies[-1] == "Hi Ana, lunch moved to Friday at noon. Best, Ben"
    assert s.value.subject == "Lunch on Friday" and s.result.chosen == 0


def test_a_streamed_step_with_a_repair_strategy_streams_each_attempt_and_keeps_the_checks():
    from compound.control.requirements import Check
    from compound.strategies.repair import Repair

    short = '{"subject": "Lunch", "body": "Friday."}'
    step = Predict(
        "box -> subject, body",
        model=ScriptedBackend([short, DRAFT], cycle=False),
        requirements=[Check(lambda d: len(d.body.split()) >= 5, "a body of five words or more")],
        strategy=Repair(2),
    )
    s = step.astream(box="Ana, lunch Friday")

    async def main():
        return [p async for p in s]

    partials = asyncio.run(main())
    assert sorted({p.candidate for p in partials}) == [0, 1]  # the repair streamed as a new text
    assert s.value.body.startswith("Hi Ana") and s.result.chosen == 1


def test_a_plain_text_step_streams_its_text():
    step = Predict(
        "box -> draft", model=ScriptedBackend(["Hi Ana, see you Friday."], latency_s=0.05), output_format="text"
    )
    s = step.stream(box="Ana")
    values = [p.value for p in s]
    assert values[-1] == {"draft": "Hi Ana, see you Friday."} and s.value.draft == "Hi Ana, see you Friday."


def test_a_step_that_never_parses_raises_at_the_end_of_its_stream():
    step = Predict("box -> subject, body", model=ScriptedBackend(["not json at all"]), parse_repairs=0)
    s = step.stream(box="x")
    with pytest.raises(OutputParseError):
        list(s)
    assert s.result is not None and s.value is None


def test_closing_a_step_stream_cancels_its_call_and_caches_nothing():
    backend = ScriptedBackend([DRAFT], latency_s=0.3)
    step = Predict("box -> subject, body", model=backend)
    with compound.budget(tokens=10_000) as b:
        with step.stream(box="Ana") as s:
            next(s)
        assert b.reserved_calls == 0
    assert backend.in_flight == 0 and s.value is None
    assert [sp["status"] for sp in trace_store().list(50) if sp["kind"] == "llm"] == ["cancelled"]
    assert step(box="Ana").subject == "Lunch on Friday" and len(backend.requests) == 2  # not served from a cache


def test_ask_stream_prints_the_answer_and_a_schema_answer_as_json(compound_cli, tmp_path):
    out = compound_cli("ask", "one two three four", "--model", "scripted", "--stream", "--usage")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "one two three four\n" and "tokens" in out.stderr
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}')
    out = compound_cli("ask", '{"city": "Lyon"}', "--model", "scripted", "--schema", schema, "--stream")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"city": "Lyon"}


def test_a_streamed_draft_that_loops_is_stopped_there_and_repaired():
    from compound.serve.write_email import WriteEmail

    good = json.dumps(
        {
            "subject": "Lunch on Friday",
            "greeting": "Hi Ana,",
            "body": "The team lunch has moved to Friday. I hope the new day suits you and I look forward to it.",
            "sign_off": "Best,",
        }
    )
    looping = '{"subject": "Lunch", "greeting": "Hi Ana,", "body": "' + "and the lunch and the lunch " * 60
    backend = ScriptedBackend([looping, good], latency_s=0.5, cycle=False)
    with compound.budget(tokens=100_000) as b:
        s = WriteEmail(model=backend).stream(box="Ana, team lunch moved to Friday, warm")
        partials = list(s)
        assert b.reserved_calls == 0
    first = [p for p in partials if (p.candidate, p.attempt) == (0, 0)]
    assert len(first[-1].text) < len(looping) / 4  # stopped soon after the loop began, not at its end
    calls = s.result.candidates[0].generations
    assert calls[0].finish_reason == "repetition" and len(calls) == 2  # then repaired, within the candidate
    assert s.value.body.startswith("The team lunch")
    assert any(sp["status"] == "cancelled" for sp in trace_store().list(50, kind="llm"))


def test_max_tokens_zero_is_refused_before_anything_streams():
    m = model()
    with pytest.raises(compound.InputError, match="max_tokens must be positive"):
        m.stream("write", max_tokens=0)
    with pytest.raises(compound.InputError, match="max_tokens must be positive"):
        m.astream("write", max_tokens=0)
    assert m.requests == []
