import asyncio
import json
from typing import Literal

import pytest
from pydantic import BaseModel

import compound
from compound import ConfigurationError, OutputParseError, ScriptedBackend
from compound.control.requirements import MUST, SHOULD, Check, Conforms, LLMJudge, Regex
from compound.program.module import Module
from compound.program.predict import ChainOfThought, Predict, Signature
from compound.store.traces import trace_store
from compound.strategies import RejectionSampling, Repair


class Ticket(BaseModel):
    text: str


class Label(BaseModel):
    label: Literal["billing", "bug", "other"]


def label_model():
    def reply(request):
        text = request.messages[-1].content.lower()
        return json.dumps({"label": "billing" if "invoice" in text else "bug" if "crash" in text else "other"})

    return ScriptedBackend(reply)


class Triage(Module):
    def __init__(self, model):
        self.classify = Predict(Signature(Ticket, Label, "Classify the ticket."), model=model)
        self.steps = [Predict("text -> summary", model=model, name="summarize")]

    def forward(self, text):
        return self.classify(text=text).label


def test_program_runs_steps_and_traces_them():
    program = Triage(label_model())
    with compound.start_run("triage") as run:
        assert program(text="My invoice is wrong") == "billing"
    kinds = [s["kind"] for s in trace_store().run_spans(run.id)]
    assert kinds.count("step") == 2 and kinds.count("llm") == 1  # Triage and its classify step


def test_parameters_are_named_by_position_in_the_program():
    params = Triage(label_model()).named_parameters()
    assert params["classify.instructions"] == "Classify the ticket."
    assert set(params) >= {"classify.demos", "classify.model", "steps.0.instructions"}


def test_save_then_load_gives_the_same_outputs(tmp_path):
    model = label_model()
    program = Triage(model)
    program.classify.instructions = "Classify the support ticket carefully."
    program.classify.demos = [{"text": "app crashes", "label": "bug"}]
    path = program.save(tmp_path / "triage.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "compound.program" and doc["version"] == 2
    loaded = Triage.load(path, model)
    assert loaded.named_parameters() == program.named_parameters()
    texts = ["invoice twice", "it crashes on start", "hello"]
    with compound.context(cache=False):
        assert [loaded(text=t) for t in texts] == [program(text=t) for t in texts]
    # the demo reaches the prompt
    assert any("app crashes" in m.content for m in model.requests[-1].messages)


def test_loading_a_newer_or_foreign_file_fails_clearly(tmp_path):
    program = Triage(label_model())
    newer = {**program.state(), "version": 99}
    (tmp_path / "new.json").write_text(json.dumps(newer))
    with pytest.raises(ConfigurationError, match="newer compound"):
        Triage.load(tmp_path / "new.json", label_model())
    (tmp_path / "other.json").write_text(json.dumps({"weights": [1, 2]}))
    with pytest.raises(ConfigurationError, match="not a saved compound program"):
        Triage.load(tmp_path / "other.json", label_model())
    wrong = {**program.state(), "parameters": {"nope.instructions": "x"}}
    with pytest.raises(ConfigurationError, match="nope.instructions"):
        program.load_state(wrong)


def test_requirements_without_a_strategy_are_refused():
    with pytest.raises(ConfigurationError, match="without a strategy"):
        Predict(Signature(Ticket, Label), requirements=[Regex("bug", field="label")])


def test_repair_feeds_back_reasons_and_returns_every_candidate():
    model = ScriptedBackend(['{"label": "other"}', '{"label": "bug"}'], cycle=False)
    step = Predict(
        Signature(Ticket, Label),
        model=model,
        strategy=Repair(3),
        requirements=[Check(lambda v: v.label == "bug", "the label is bug")],
    )
    with compound.start_run("repair") as run:
        result = step.run(text="crash")
    assert [c.passed for c in result.candidates] == [False, True]
    assert result.chosen == 1 and result.value.label == "bug"
    assert "the label is bug" in model.requests[1].messages[-1].content
    spans = trace_store().run_spans(run.id)
    cands = [s for s in spans if s["kind"] == "candidate"]
    assert len(cands) == 2 and {s["attrs"]["index"] for s in cands} == {0, 1}
    assert len([s for s in spans if s["kind"] == "validation"]) == 2


def test_when_nothing_passes_the_best_failing_candidate_is_returned_and_said():
    replies = iter(['{"label": "other"}', '{"label": "billing"}', '{"label": "other"}'])
    model = ScriptedBackend(lambda r: next(replies))
    step = Predict(
        Signature(Ticket, Label),
        model=model,
        strategy=RejectionSampling(3),
        requirements=[Regex("^b", field="label", level=MUST), Check(lambda v: v.label == "bug", "is bug", level=MUST)],
    )
    result = step.run(text="x")
    assert len(result.candidates) == 3 and not result.passed
    assert result.value.label == "billing"  # passes one MUST of two
    assert "no candidate met every MUST" in result.note


def test_should_breaks_ties_between_passing_candidates_in_parallel_sampling():
    replies = {0: "other", 1: "bug", 2: "billing"}
    model = ScriptedBackend(lambda r: json.dumps({"label": replies[r.sample_index]}))
    step = Predict(
        Signature(Ticket, Label),
        model=model,
        strategy=RejectionSampling(3, parallel=True),
        requirements=[Conforms(Label), Check(lambda v: v.label == "billing", "prefer billing", level=SHOULD)],
    )
    result = step.run(text="x")
    assert len(result.candidates) == 3 and result.value.label == "billing"
    assert {r.sample_index for r in model.requests} == {0, 1, 2}
    assert all(r.temperature > 0 for r in model.requests if r.sample_index > 0)


def test_unparseable_candidates_are_kept_as_data():
    model = ScriptedBackend(["nope"])
    step = Predict(Signature(Ticket, Label), model=model, strategy=RejectionSampling(2), requirements=[Conforms(Label)])
    result = step.run(text="x")
    assert all(c.error and "did not parse" in c.error for c in result.candidates)
    assert result.value is None and not result.passed


def test_llm_judge_returns_its_reason():
    judge = ScriptedBackend(['{"reason": "it is polite", "passed": true}'])
    model = ScriptedBackend(['{"summary": "Thanks for writing!"}'])
    step = Predict(
        "text -> summary", model=model, strategy=Repair(1), requirements=[LLMJudge("is polite", model=judge)]
    )
    result = step.run(text="hi")
    v = result.best.validations[0]
    assert v.passed and v.reason == "it is polite" and v.level is SHOULD


def test_chain_of_thought_reasons_freely_then_answers_typed():
    def reply(request):
        if request.json_schema is None:
            assert "Think step by step" in request.messages[-1].content
            return "The user mentions a crash, so it is a bug."
        assert request.messages[-2].content.startswith("The user mentions a crash")
        return '{"label": "bug"}'

    model = ScriptedBackend(reply)
    out = ChainOfThought(Signature(Ticket, Label), model=model)(text="app crash")
    assert out.label == "bug" and out.reasoning.startswith("The user mentions")
    assert isinstance(out, Label)


def test_chain_of_thought_raises_when_the_answer_never_parses():
    model = ScriptedBackend(lambda r: "thinking..." if r.json_schema is None else "no json")
    with pytest.raises(OutputParseError):
        ChainOfThought(Signature(Ticket, Label), model=model)(text="x")


def test_async_program_with_concurrent_steps():
    class Both(Module):
        def __init__(self, model):
            self.a = Predict(Signature(Ticket, Label), model=model)
            self.b = Predict(Signature(Ticket, Label), model=model)

        async def aforward(self, text):
            x, y = await asyncio.gather(self.a.acall(text=text), self.b.acall(text=text + " invoice"))
            return x.label, y.label

    out = asyncio.run(Both(label_model()).acall(text="crash"))
    assert out == ("bug", "billing")


def test_bad_inputs_name_the_step():
    with pytest.raises(ConfigurationError, match="bad inputs"):
        Predict(Signature(Ticket, Label), model=label_model())(txt="x")


def test_a_strategy_with_no_parseable_candidate_raises_instead_of_returning_none():
    step = Predict(
        Signature(Ticket, Label), model=ScriptedBackend(["nope"]), strategy=Repair(2), requirements=[Conforms(Label)]
    )
    with pytest.raises(OutputParseError, match="no candidate met every MUST"):
        step(text="x")
