"""auto at job scale: the planner's guarantee, its choice to teach only when it pays, the active sampler,
the forecast. The teacher is a scripted backend that burns real CPU per call (what the planner measures)."""

import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import compound
from compound import ScriptedBackend
from compound.core.concurrency import run_sync
from compound.core.usage import track_usage
from compound.optimize.auto import summary_line
from compound.optimize.auto_lora import LoraStudent
from compound.optimize.labels import label_step
from compound.optimize.planner import Allowance, Costs, Forecast, StagePlan, pays
from compound.optimize.staged import _stop, labelled_step, plan_and_answer
from compound.optimize.students.active import choose, margins
from compound.tables.jobs import process_table
from compound.tables.operators import classify

sys.path.insert(0, str(Path(__file__).parent / "examples_site"))
import examples_fakes as fakes  # noqa: E402  # the hashed embeddings test_examples uses too

POS, NEG = ["great", "lovely", "superb", "fine"], ["awful", "dull", "poor", "bad"]
#: local work costs little here (hashed embeddings; scikit-learn already imported): priors that say so
CHEAP = Costs(teacher=0.0, embed=1e-4, embed_load=0.01, fit_load=0.2)


@pytest.fixture(autouse=True)
def hashed_embeddings(monkeypatch):
    monkeypatch.setattr("compound.optimize.staged.embed_texts", fakes.hashed_embed)
    import sklearn.cluster  # noqa: F401  # imported once, before any measured job
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    # the first stage reads the hashed words alone in these miniature jobs, which are built on what a bag of
    # words can and cannot learn (character n-grams learn "code N"'s parity from its last digit); the tests
    # of the n-grams turn them on
    monkeypatch.setattr("compound.optimize.staged.CHAR_NGRAMS", False)


def burn(cpu_s):
    c0 = time.process_time()
    while time.process_time() - c0 < cpu_s:
        pass


def teacher(cpu_s, noise=0):
    """Labels by keyword (wrong on every ``noise``-th row when given), burning ``cpu_s`` CPU s per call."""

    def reply(request):
        burn(cpu_s)
        text = request.messages[-1].content
        label = "pos" if any(w in text for w in POS) else "neg"
        if noise and int(text.split()[-1]) % noise == 0:
            label = "neg" if label == "pos" else "pos"
        return json.dumps({"label": label})

    return ScriptedBackend(reply, model=f"teacher-{cpu_s}-{noise}")


def rows(n, seed=0):
    rng = random.Random(seed)
    return [f"a {rng.choice(POS if rng.random() < 0.5 else NEG)} film {i}" for i in range(n)]


def run(texts, model, **kw):
    step = labelled_step(label_step(["pos", "neg"], model, "label"), "label")
    with compound.context(cache=False), track_usage() as used:
        program, report = run_sync(plan_and_answer(texts, step, **kw))
        answers = [program(row=t)["label"] for t in texts]
    return program, report, answers, used.total.cpu_s


@pytest.mark.parametrize("n", [60, 200])
def test_a_short_job_never_costs_more_than_1_05x_the_large_model_alone(n):
    texts = rows(n)
    model = teacher(0.01)
    program, report, answers, total = run(texts, model, encoder=False)
    large = n * report["teacher_cpu_per_row"]
    assert total <= 1.05 * large + 0.05  # one-time costs included; 0.05 s: the clock's granularity
    assert "too short to teach" in report["plan"]
    assert report["rows_by_stage"]["teacher"] + report["rows_by_stage"]["teacher (label)"] == n
    asked = Counter(r.messages[-1].content for r in model.requests)
    assert len(asked) == n and max(asked.values()) == 1  # no row asked twice
    assert answers == ["pos" if any(w in t for w in POS) else "neg" for t in texts]


def test_a_job_long_enough_to_pay_is_taught_and_costs_a_fraction():
    texts = rows(800)
    model = teacher(0.03, noise=50)
    program, report, answers, total = run(texts, model, encoder=False, costs=CHEAP, target=0.9)
    large = len(texts) * report["teacher_cpu_per_row"]
    assert report["plan"] == "taught: embedding student"
    assert report["rows_by_stage"]["embedding student"] > 0.5 * len(texts)
    assert total < 0.6 * large
    truth = ["pos" if any(w in t for w in POS) else "neg" for t in texts]
    assert sum(a == b for a, b in zip(answers, truth, strict=True)) / len(texts) >= 0.93
    # the certificate is learned on the random hold-out only; the training rows were picked actively
    assert 0 < report["hold_out"] < report["teacher_labelled"]
    assert len({r.messages[-1].content for r in model.requests}) == len(model.requests)  # no row asked twice


def test_loading_the_embedder_is_a_one_time_cost_not_charged_to_every_row(monkeypatch):
    """The first call of a process loads the embedder (2 to 4 CPU s for MiniLM). Counted in the first
    chunk's per-row rate and extrapolated to every row, it once made a 2,000-row job 'too short to teach'."""
    import compound.optimize.staged as staged

    hashed, loaded = staged.embed_texts, []

    def embed(texts, model_path=None):
        if not loaded:  # loading the model, once per process, as the real embedder does
            loaded.append(True)
            burn(0.3)
        return hashed(texts)

    monkeypatch.setattr(staged, "embed_texts", embed)
    texts = rows(1200)
    program, report, answers, total = run(texts, teacher(0.03, noise=50), encoder=False, costs=CHEAP, target=0.9)
    assert report["plan"] == "taught: embedding student", report["allowance"]["refused"]
    assert total <= 1.05 * len(texts) * report["teacher_cpu_per_row"] + 0.05


def test_the_allowance_refuses_work_past_the_bound_and_counts_banked_rows():
    a = Allowance(rows=1000, teacher_cpu=1.0, slack=0.05)
    assert a.limit == 50 and a.fits(50, "x") and not a.fits(50.5, "y")
    assert "y: forecast 50.5 CPU s" in a.refused[-1]
    a.spend(40)
    a.bank(100)  # 100 rows a student answers: their teacher calls will never be made
    assert a.limit == 150 and a.left == 110 and a.fits(110, "z")


def test_the_forecast_gives_the_large_model_alone_the_expected_cost_and_the_break_even():
    costs = Costs(teacher=1.0, embed=0.01)
    f = Forecast(2000, costs, (StagePlan("embedding student", 10.0, 0.01, 0.5), StagePlan("encoder", 90.0, 0.01, 0.3)))
    assert f.large_alone == 2000 and f.teacher_share == pytest.approx(0.2)
    assert f.per_row == pytest.approx(0.01 + 0.5 * 0.01 + 0.2)
    assert f.expected == pytest.approx(100 + 2000 * f.per_row)
    assert f.break_even_rows == math.ceil(100 / (1 - f.per_row))
    text = "\n".join(f.lines(15.0, usd_per_row=1e-4))
    assert "large model alone: 2,000 rows" in text and "break-even at 128 rows" in text and "$" in text
    useless = Forecast(10, costs, (StagePlan("s", 50.0, 2.0, 0.1),))
    assert useless.expected == pytest.approx(1.05 * 10) and useless.to_dict()["break_even_rows"] is None
    assert pays(30, 10, payback=3) and not pays(29, 10, payback=3)


def test_active_sampling_takes_the_least_certain_row_of_each_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    vectors = np.vstack([c + rng.normal(0, 0.1, (10, 2)) for c in centres])
    probs = np.tile([0.9, 0.1], (30, 1))
    unsure = [3, 14, 27]  # one per cluster
    probs[unsure] = [0.55, 0.45]
    probs[5] = [0.6, 0.4]  # second-least certain, in the first cluster
    picked = choose(vectors, probs, list(range(30)), 3)
    assert sorted(picked) == unsure  # diverse: not 3 and 5 from one cluster
    assert list(margins(probs[[3, 0]])) == pytest.approx([0.1, 0.8])
    assert choose(vectors, probs, [1, 2], 5) == [1, 2] and choose(vectors, probs, [1, 2], 0) == []


def test_classify_auto_runs_the_plan_and_the_summary_compares_forecast_and_actual(monkeypatch):
    monkeypatch.setattr("compound.optimize.staged.PRIORS", CHEAP)
    texts = rows(700, seed=3)
    df = pd.DataFrame({"text": texts})
    model = teacher(0.03, noise=50)
    with compound.context(cache=False):
        op = classify(df, "label", ["pos", "neg"], input_columns=["text"], model=model, program="auto", target=0.9)
        result = process_table(op, df)
    report = op.setup
    assert report["certified"] and report["rows_by_stage"]["embedding student"] > 0
    job = result.usage.physical.to_dict()
    line = summary_line(report, job)
    assert "rows by stage: teacher (label)" in line and "bound 1.05x" in line and "target 0.900" in line
    assert f"forecast for the job {report['expected_job_cpu_s']:.1f} CPU s" in line
    # the forecast (the teacher's rows at its measured CPU) within 25% of what those rows then cost
    assert job["cpu_s"] == pytest.approx(report["expected_job_cpu_s"], rel=0.25, abs=0.05)


def code_rows(n, seed=0):
    """Half the rows carry a sentiment word (the embedding student learns those); the other half are
    'code N' rows labelled by N's parity, which hashed words cannot learn but a LoRA student could."""
    rng = random.Random(seed)
    return [
        f"a {rng.choice(POS if i % 4 == 1 else NEG)} film {i}" if i % 2 else f"code {rng.randrange(1000)} {i}"
        for i in range(n)
    ]


def code_truth(text):
    words = text.split("row:", 1)[-1].split()
    if "code" in words:
        return "pos" if int(words[words.index("code") + 1]) % 2 == 0 else "neg"
    return "pos" if any(w in words for w in POS) else "neg"


def code_teacher(cpu_s):
    def reply(request):
        burn(cpu_s)
        return json.dumps({"label": code_truth(request.messages[-1].content)})

    return ScriptedBackend(reply, model=f"code-teacher-{cpu_s}")


class ScriptedLora(LoraStudent):
    """A LoRA student whose training is replaced by a scripted student that knows the parity rule."""

    def fit(self, step, field_name, texts, labels):
        assert len(texts) == len(labels) and set(labels) <= {"pos", "neg"}
        model = ScriptedBackend(lambda r: json.dumps({"label": code_truth(r.messages[-1].content)}), model="lora")
        return step.with_(model=model, name="lora student"), {"folder": "x", "examples": len(texts)}


def test_the_lora_stage_is_trained_only_when_its_forecast_pays_and_then_answers_what_the_others_leave():
    texts = code_rows(1000)
    cheap = ScriptedLora(train_cpu_per_example=1e-4, cpu_ratio=0.1, payback=1.0)
    program, report, answers, total = run(texts, code_teacher(0.02), encoder=False, lora=cheap, costs=CHEAP, target=0.9)
    stage = report["stages"]["lora student"]
    assert stage["picked"] and stage["certified"] and report["rows_by_stage"]["lora student"] > 0.2 * len(texts)
    assert report["rows_by_stage"]["embedding student"] > 0.2 * len(texts)
    assert total <= 1.05 * len(texts) * report["teacher_cpu_per_row"]
    assert sum(a == code_truth(t) for a, t in zip(answers, texts, strict=True)) / len(texts) >= 0.95

    costly = ScriptedLora()  # 2 CPU s per training example, against 0.02 CPU s per teacher row: never pays
    program, report, answers, total = run(
        texts, code_teacher(0.02), encoder=False, lora=costly, costs=CHEAP, target=0.9
    )
    assert not report["stages"]["lora student"]["picked"] and "too short" in report["stages"]["lora student"]["skipped"]
    assert "lora student" not in report["rows_by_stage"] or report["rows_by_stage"]["lora student"] == 0


class ScriptedEncoder:
    """The fine-tuned encoder's interface: its one-batch probe burns ``per_example`` CPU s for each of the
    batch's examples; trained, it knows the parity rule (as a fine-tuned encoder could)."""

    def __init__(self, per_example):
        from compound.optimize.students.encoder import EncoderSettings

        self.settings = EncoderSettings()
        self.per_example, self.probed, self.trained_on = per_example, 0, 0

    def probe(self, texts, labels):
        size = min(len(texts), self.settings.batch_size)
        burn(self.per_example * size)
        self.probed += 1
        return self.per_example

    def fit(self, texts, labels, cpu_cap=None):
        self.trained_on = len(texts)
        return {"cpu_s": 0.0, "cpu_s_per_example": self.per_example, "examples": len(texts)}

    def predict(self, texts):
        return [(code_truth(t), 0.99) for t in texts]


def test_the_encoder_is_trained_on_the_cost_its_probe_measures_not_on_the_prior():
    texts = code_rows(1000)
    # the prior says 0.3 CPU s per example and epoch: about 300 CPU s for these labels, which the 20 CPU s of
    # this job's allowance refuse; measured on one batch it costs 1e-4, and it is trained
    cheap = ScriptedEncoder(1e-4)
    costs = Costs(teacher=0.0, embed=1e-4, embed_load=0.01, fit_load=0.2, encoder_train=0.3)
    program, report, answers, total = run(texts, code_teacher(0.02), encoder=cheap, costs=costs, target=0.9)
    stage = report["stages"]["fine-tuned encoder"]
    assert cheap.probed == 1 and cheap.trained_on > 0 and stage["probe_cpu_s_per_example"] == pytest.approx(1e-4)
    assert stage["certified"] and report["rows_by_stage"]["fine-tuned encoder"] > 0.2 * len(texts)
    assert total <= 1.05 * len(texts) * report["teacher_cpu_per_row"]

    costly = ScriptedEncoder(0.05)  # measured dear: its training would cost more than the rows it could save
    program, report, answers, total = run(texts, code_teacher(0.02), encoder=costly, costs=costs, target=0.9)
    stage = report["stages"]["fine-tuned encoder"]
    assert costly.probed == 1 and costly.trained_on == 0 and "does not pay" in stage["skipped"]
    assert stage["forecast_cost_cpu_s"] > stage["forecast_saving_cpu_s"]


def test_classify_auto_seed_fixes_the_rows_labelled_and_another_seed_draws_others():
    texts = rows(120, seed=5)
    df = pd.DataFrame({"text": texts})

    def labelled(seed):
        model = teacher(0.001)
        with compound.context(cache=False):
            classify(df, "label", ["pos", "neg"], input_columns=["text"], model=model, program="auto", seed=seed)
        return {r.messages[-1].content for r in model.requests}  # the rows the teacher labelled while planning

    first = labelled(0)
    assert len(first) >= 32
    assert labelled(0) == first
    assert labelled(1) != first


def stem_rows(n, seed=0):
    """Rows whose label is a word's stem inside a token of its own ("python417"): every token is new to a
    bag of words, while the stem's character n-grams repeat."""
    rng = random.Random(seed)
    return [f"asked {i}: {rng.choice(['python', 'ruby'])}{rng.randrange(10**6)} {i}" for i in range(n)]


def stem_teacher(cpu_s):
    return ScriptedBackend(
        lambda r: (burn(cpu_s), json.dumps({"label": "py" if "python" in r.messages[-1].content else "rb"}))[1],
        model=f"stem-teacher-{cpu_s}",
    )


def test_the_first_stage_reads_character_ngrams_where_the_words_cannot_decide(monkeypatch):
    texts = stem_rows(1000)
    truth = ["py" if "python" in t else "rb" for t in texts]

    def taught(ngrams):
        monkeypatch.setattr("compound.optimize.staged.CHAR_NGRAMS", ngrams)
        step = labelled_step(label_step(["py", "rb"], stem_teacher(0.03), "label"), "label")
        with compound.context(cache=False), track_usage() as used:
            program, report = run_sync(plan_and_answer(texts, step, encoder=False, costs=CHEAP, target=0.9))
            answers = [program(row=t)["label"] for t in texts]
        assert used.total.cpu_s <= 1.05 * len(texts) * report["teacher_cpu_per_row"] + 0.05
        return report, answers

    report, answers = taught(False)  # the hashed words alone: nothing to learn
    assert report["rows_by_stage"].get("embedding student", 0) == 0
    report, answers = taught(True)
    assert report["rows_by_stage"]["embedding student"] > 0.5 * len(texts)
    assert sum(a == b for a, b in zip(answers, truth, strict=True)) / len(texts) >= 0.97


def test_label_rounds_stop_on_a_plateau_and_go_on_through_a_dip_of_the_certificate():
    def rounds(*banked, hold_out=200):
        return [{"banked": b, "hold_out": hold_out, "threshold": {"value": 0.3 if b else None}} for b in banked]

    # (the gain is measured from the best round before the last)
    assert "labels no longer pay" in _stop(rounds(0, 900, 950), 50, 80, 44, 600, room=True)
    assert _stop(rounds(0, 900, 1000), 100, 80, 44, 600, room=True) is None  # it paid: one more
    # banked fewer than the best round: the certificate's noise, not the labels; the lesser student would be
    # the one deployed, so labelling goes on while the cap leaves room
    assert _stop(rounds(0, 1100, 540), -560, 80, 44, 600, room=True) is None
    assert _stop(rounds(0, 1100, 540), -560, 80, 44, 600, room=False) == "label cap 600 reached"
    assert _stop(rounds(0, 900, 0), -900, 80, 44, 600, room=True) is None  # certified for nothing: go on
    assert _stop(rounds(0, 900, 950, hold_out=40), 50, 80, 44, 600, room=True) is None  # too few to judge
    assert _stop(rounds(900, 950), 50, 80, 44, 600, room=True) is None  # the first rounds always go on
