"""One path per call: a step with and without a strategy gives the same trace tree, errors and
confidence, and every result says how many calls each candidate took."""

import asyncio
import gc

import pytest
from pydantic import BaseModel

import compound


class Q(BaseModel):
    question: str


class A(BaseModel):
    answer: str


VALID = '{"answer": "Paris"}'


def tree(run_id):
    """The run's spans as nested (kind, name) tuples, in start order."""
    spans = compound.trace_store().run_spans(run_id)
    children = {}
    for s in spans:
        children.setdefault(s["parent_id"], []).append(s)

    def node(s):
        return (s["kind"], s["name"], tuple(node(c) for c in children.get(s["id"], [])))

    return node(next(s for s in spans if s["id"] == run_id))


def traced(step, **inputs):
    with compound.start_run("t") as run:
        try:
            step(**inputs)
            error = None
        except compound.CompoundError as e:
            error = type(e)
    return tree(run.id), error


def signature():
    return compound.Signature(Q, A, "Answer.")


@pytest.mark.parametrize("replies", [[VALID], ["not json", "still not json"]], ids=["valid", "never-parses"])
def test_with_and_without_a_strategy_the_trace_tree_and_error_type_are_the_same(replies):
    plain = compound.Predict(signature(), model=compound.ScriptedBackend(replies, model="a"), name="s")
    strat = compound.Predict(
        signature(), model=compound.ScriptedBackend(replies, model="a"), name="s", strategy=compound.Repair(1)
    )
    with compound.context(cache=False):
        plain_tree, plain_error = traced(plain, question="Capital of France?")
        strat_tree, strat_error = traced(strat, question="Capital of France?")
    assert plain_tree == strat_tree
    assert plain_error == strat_error
    (step,) = plain_tree[2]
    assert step[:2] == ("step", "s") and [c[:2] for c in step[2]] == [("candidate", "candidate #0")]
    calls = [c[0] for c in step[2][0][2]]
    assert calls == ["llm"] * (1 if replies == [VALID] else 2)  # the parse repair is a call of its own
    if replies != [VALID]:
        assert plain_error is compound.OutputParseError


def test_the_async_path_gives_the_same_tree_as_the_sync_one():
    step = compound.Predict(signature(), model=compound.ScriptedBackend([VALID]), name="s")
    sync_tree, _ = traced(step, question="q")
    with compound.start_run("t") as run:
        asyncio.run(step.acall(question="q"))
    assert tree(run.id) == sync_tree


def test_self_consistency_of_5_on_a_valid_model_makes_exactly_5_calls_and_says_so():
    model = compound.ScriptedBackend([VALID], model="valid")
    step = compound.Predict(signature(), model=model, strategy=compound.SelfConsistency(5))
    with compound.track_usage() as usage:
        result = step.result(question="Capital of France?")
    assert len(model.requests) == 5 and usage.physical.calls == 5
    assert result.calls == 5 and result.calls_per_candidate == [1, 1, 1, 1, 1]
    assert result.to_dict()["calls_per_candidate"] == [1, 1, 1, 1, 1]
    assert result.value.answer == "Paris" and result.confidence == 1.0


def test_parse_repairs_are_a_parameter_and_their_calls_are_reported_per_candidate():
    def step(parse_repairs):
        model = compound.ScriptedBackend(["nope"], model=f"bad{parse_repairs}")
        return model, compound.Predict(
            signature(), model=model, strategy=compound.Repair(2), parse_repairs=parse_repairs
        )

    for repairs in (0, 1, 3):
        model, s = step(repairs)
        result = s.result(question="q")
        assert result.calls_per_candidate == [repairs + 1, repairs + 1]
        assert len(model.requests) == result.calls == 2 * (repairs + 1)
        with compound.start_run("t") as run:
            s.result(question="q")  # served from the cache: still calls, visible on each candidate span
        spans = compound.trace_store().run_spans(run.id)
        assert [sp["attrs"]["calls"] for sp in spans if sp["kind"] == "candidate"] == [repairs + 1] * 2
    with pytest.raises(compound.InputError, match="parse_repairs"):
        compound.Predict(signature(), parse_repairs=-1)


def test_the_error_names_the_step_and_keeps_every_attempt():
    step = compound.Predict(signature(), model=compound.ScriptedBackend(["x", "y"]), name="s", parse_repairs=1)
    with pytest.raises(compound.OutputParseError, match="^s: ") as e:
        step(question="q")
    assert e.value.attempts == ["x", "y"] and len(e.value.generations) == 2


class Logprobs(compound.Backend):
    """A fake that returns token logprobs."""

    kind = "logprobs"
    blocking = False
    simulated = True

    def _generate(self, request):
        return compound.Completion(VALID, 10, 5, logprobs=[-0.1, -0.3])


def test_the_logprob_confidence_is_the_same_on_every_path():
    plain = compound.Predict(signature(), model=Logprobs("m"), logprobs=True)
    strat = compound.Predict(signature(), model=Logprobs("m"), logprobs=True, strategy=compound.RejectionSampling(1))
    sync_conf = plain.result(question="q").confidence
    async_conf = asyncio.run(plain.aresult(question="q")).confidence
    assert sync_conf == async_conf == pytest.approx(0.8187, abs=1e-4)  # exp(mean(-0.1, -0.3))
    assert strat.result(question="q").best.logprob_confidence == sync_conf


def test_chain_of_thought_counts_its_reasoning_call():
    model = compound.ScriptedBackend(["Paris is the capital.", VALID])
    result = compound.ChainOfThought(signature(), model=model).result(question="q")
    assert result.calls_per_candidate == [2] and result.value.reasoning == "Paris is the capital."


def test_a_later_max_concurrency_takes_effect_and_loop_state_does_not_outlive_its_loop():
    model = compound.ScriptedBackend(["x"], latency_s=0.005)

    async def burst():
        await asyncio.gather(*(model.agenerate(f"q{i}", cache=False) for i in range(12)))

    for limit in (2, 5):
        model.peak_in_flight = 0
        compound.configure(max_concurrency=limit)
        asyncio.run(burst())
        assert model.peak_in_flight == limit
    gc.collect()
    assert len(model._loop_slots) == 0  # each finished loop's slots went with it


def test_with_changes_only_what_it_names_and_keeps_the_class():
    first = compound.ScriptedBackend(["Let me think.", VALID], model="first")
    other = compound.ScriptedBackend(["Thinking again.", VALID], model="other")
    step = compound.ChainOfThought(
        "question -> answer", model=first, demos=[{"question": "1+1?", "answer": "2"}], parse_repairs=2, logprobs=True
    )
    copy = step.with_(model=other, name="copy")
    assert type(copy) is compound.ChainOfThought and copy.reasoning_tokens == step.reasoning_tokens
    assert (copy.parse_repairs, copy.logprobs, copy.demos) == (2, True, step.demos)
    assert copy.result(question="q").value.reasoning == "Thinking again."
    assert len(other.requests) == 2 and not first.requests and step.model is first and step.name is None
    copy.demos.append({"question": "2+2?", "answer": "4"})
    assert len(step.demos) == 1  # nothing mutable is shared
    with pytest.raises(compound.InputError, match="no setting"):
        step.with_(modle=other)
