import asyncio
import json
import math
import random

import pandas as pd
import pytest
from pydantic import BaseModel

import compound
from compound import ScriptedBackend
from compound.control.requirements import Check
from compound.evaluate.compare import compare
from compound.evaluate.report import pareto_front
from compound.evaluate.scale import returns_curve
from compound.program.predict import Predict, Signature
from compound.program.rows import RowInput
from compound.routing.cascade import Cascade, LLMStage, Router
from compound.strategies import BestOfN, SelfConsistency, VerifyAndSelect


class Answer(BaseModel):
    answer: str


def votes(*answers):
    return ScriptedBackend(lambda r: json.dumps({"answer": answers[r.sample_index % len(answers)]}))


def test_self_consistency_votes_over_normalised_answers_and_reports_agreement():
    step = Predict(
        Signature(RowInput, Answer),
        model=votes("Paris", " paris", "Lyon", "PARIS ", "Nice"),
        strategy=SelfConsistency(5),
    )
    result = step.run(row="capital of France?")
    assert len(result.candidates) == 5 and result.value.answer.strip().lower() == "paris"
    assert result.confidence == pytest.approx(3 / 5)


def test_samples_are_drawn_in_parallel_and_cached_by_index():
    model = votes("a", "b")
    step = Predict(Signature(RowInput, Answer), model=model, strategy=SelfConsistency(4))
    step.run(row="q")
    assert sorted(r.sample_index for r in model.requests) == [0, 1, 2, 3]
    bigger = Predict(Signature(RowInput, Answer), model=model, strategy=SelfConsistency(8))
    bigger.run(row="q")
    assert len(model.requests) == 8  # N=8 reused the four samples of N=4


def test_best_of_n_and_verify_and_select_keep_every_candidate():
    model = votes("short", "a much longer answer", "mid size")
    best = Predict(Signature(RowInput, Answer), model=model, strategy=BestOfN(3, lambda v, i: len(v.answer))).run(
        row="q"
    )
    assert best.value.answer == "a much longer answer" and len(best.candidates) == 3
    verify = Predict(
        Signature(RowInput, Answer),
        model=model,
        strategy=VerifyAndSelect(3),
        requirements=[Check(lambda v: v.answer.startswith("mid"), "starts with mid")],
    ).run(row="q")
    assert verify.value.answer == "mid size" and verify.passed


def stage_model(correct_rate, seed):
    """A scripted classifier that is right on a fixed share of inputs (decided per input). Each has its
    own model name, so their replies never share cache entries."""

    def reply(request):
        text = request.messages[-1].content
        truth = "pos" if "good" in text else "neg"
        rng = random.Random(f"{seed}-{text}-{request.sample_index}")
        wrong = {"pos": "neg", "neg": "pos"}[truth]
        return json.dumps({"label": truth if rng.random() < correct_rate(text) else wrong})

    return ScriptedBackend(reply, model=f"stage-{seed}")


def label_step(model):
    from typing import Literal

    from pydantic import create_model

    Out = create_model("Out", label=(Literal["pos", "neg"], ...))
    return Predict(Signature(RowInput, Out), model=model)


def test_cascade_calibrates_thresholds_and_routes_hard_inputs_to_the_large_stage(tmp_path):
    easy = lambda text: 0.97 if "easy" in text else 0.55  # noqa: E731
    small = LLMStage(label_step(stage_model(easy, 1)), "label", "small", votes=5)
    large = LLMStage(label_step(stage_model(lambda t: 1.0, 2)), "label", "large")
    cascade = Cascade([small, large], "label")
    texts = [f"text: {'easy' if i % 2 else 'hard'} {'good' if i % 3 else 'bad'} {i}" for i in range(200)]
    thresholds = asyncio.run(cascade.calibrate(texts, target=0.9, delta=0.1))  # labelled by the large stage
    assert math.isfinite(thresholds[0].value) and thresholds[0].bound >= 0.9
    fresh = [f"text: {'easy' if i % 2 else 'hard'} {'good' if i % 3 else 'bad'} {i}" for i in range(1000, 1200)]

    async def run_all():
        return [await cascade.acall(row=t) for t in fresh]

    outs = asyncio.run(run_all())
    truth = ["pos" if "good" in t else "neg" for t in fresh]
    agreement = sum(o["label"] == t for o, t in zip(outs, truth, strict=False)) / len(fresh)
    assert agreement >= 0.9
    assert 0 < cascade.answered_by["small"] < len(fresh)  # some inputs stayed cheap, some went up
    cascade.save(tmp_path / "cascade.json")
    again = Cascade([small, large], "label").load_state(json.loads((tmp_path / "cascade.json").read_text()))
    assert again.thresholds[0] == thresholds[0]  # thresholds are saved with the program


def test_a_stage_certified_for_nothing_is_not_asked():
    small_model = stage_model(lambda t: 0.55, 1)  # never sure enough: no threshold can be certified
    small = LLMStage(label_step(small_model), "label", "small", votes=3)
    large = LLMStage(label_step(stage_model(lambda t: 1.0, 2)), "label", "large")
    cascade = Cascade([small, large], "label")
    texts = [f"text: {'good' if i % 3 else 'bad'} {i}" for i in range(60)]
    thresholds = asyncio.run(cascade.calibrate(texts, target=0.95, delta=0.1))
    assert not math.isfinite(thresholds[0].value)
    asked = len(small_model.requests)

    async def run_all():
        return [await cascade.acall(row=t) for t in [f"text: good {i}" for i in range(100, 110)]]

    outs = asyncio.run(run_all())
    assert [o["label"] for o in outs] == ["pos"] * 10 and cascade.answered_by == {"small": 0, "large": 10}
    assert len(small_model.requests) == asked  # it would only have added its cost


def test_router_sends_each_input_to_one_route():
    short = label_step(ScriptedBackend(['{"label": "pos"}']))
    long = label_step(ScriptedBackend(['{"label": "neg"}']))
    router = Router({"short": short, "long": long}, lambda inputs: "short" if len(inputs["row"]) < 20 else "long")
    assert asyncio.run(router.acall(row="tiny")).label == "pos"
    assert asyncio.run(router.acall(row="a much longer input text")).label == "neg"


def test_pareto_front():
    assert pareto_front([(0.9, 10.0), (0.8, 1.0), (0.7, 5.0), (0.9, 12.0)]) == [True, True, False, False]


def test_compare_and_scale_on_scripted_models():
    compound.register_model("fake-small", stage_model(lambda t: 0.6, 3))
    compound.register_model("fake-large", stage_model(lambda t: 0.95, 4))
    df = pd.DataFrame(
        {
            "text": [f"{'good' if i % 2 else 'bad'} item {i}" for i in range(80)],
            "gold": ["pos" if i % 2 else "neg" for i in range(80)],
        }
    )
    result = asyncio.run(
        compare(
            df,
            "text",
            "gold",
            ["small", "large", "vote3", "cascade"],
            limit=40,
            calibration=40,
            small="fake-small",
            large="fake-large",
            delta=0.2,
        )
    )
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["large"]["accuracy"] > rows["small"]["accuracy"]
    assert rows["vote3"]["calls"] == 3 * rows["small"]["calls"]
    assert rows["cascade"]["one_time_cpu_s"] >= 0 and "cascade" in result["details"]
    assert any(r["pareto"] for r in result["rows"])
    curve = asyncio.run(returns_curve(df.head(30), "text", "gold", ["neg", "pos"], "fake-small", ns=(1, 2, 4)))
    assert [r["n"] for r in curve["rows"]] == [1, 2, 4] and curve["recommended_n"] in (1, 2, 4)
    assert curve["rows"][2]["calls"] == 4 * curve["rows"][0]["calls"]
