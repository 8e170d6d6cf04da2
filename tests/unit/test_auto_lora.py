"""auto's LoRA student: trained only when the job pays for it, certified on the rows it will meet, and
then the cascade's middle stage (training is replaced here by a scripted student; the integration test
trains a real one)."""

import json
import random

import pytest

from compound import ScriptedBackend
from compound.core.concurrency import run_sync
from compound.optimize import auto_lora
from compound.optimize.auto import teach
from compound.optimize.auto_lora import LoraStudent, min_certifiable

pytestmark = pytest.mark.usefixtures("bag_of_words_embeddings")


def test_it_trains_only_when_the_estimated_saving_pays_for_the_training_several_times():
    lora = LoraStudent()  # 2 CPU-s per example, 0.2x the teacher per row, payback 3
    # 200 labelled rows: 120 examples (240 CPU-s) + 80 calibration answers at 0.4 CPU-s (32): cost 272
    long = lora.decide(rows_to_teacher=1000, teacher_cpu_per_row=2.0, labelled=200, calibration_rows=60, needed=45)
    assert long["picked"] and long["estimated_cost_cpu_s"] == pytest.approx(272)
    assert long["estimated_saving_cpu_s"] == pytest.approx(1600)
    short = lora.decide(rows_to_teacher=150, teacher_cpu_per_row=2.0, labelled=200, calibration_rows=60, needed=45)
    assert not short["picked"] and "too short" in short["reason"]
    few = lora.decide(rows_to_teacher=1000, teacher_cpu_per_row=2.0, labelled=200, calibration_rows=30, needed=45)
    assert not few["picked"] and "45 are needed to certify" in few["reason"]
    tiny = lora.decide(rows_to_teacher=1000, teacher_cpu_per_row=2.0, labelled=80, calibration_rows=60, needed=45)
    assert not tiny["picked"] and "fewer than 64" in tiny["reason"]


def test_without_the_train_extra_it_says_so_and_trains_nothing(monkeypatch):
    real = auto_lora.importlib.util.find_spec
    monkeypatch.setattr(auto_lora.importlib.util, "find_spec", lambda n: None if n == "peft" else real(n))
    d = LoraStudent().decide(
        rows_to_teacher=10_000, teacher_cpu_per_row=2.0, labelled=400, calibration_rows=90, needed=45
    )
    assert not d["picked"] and d["reason"] == "the [train] extra is not installed"


def test_the_rows_needed_to_certify_follow_the_target_and_delta():
    assert min_certifiable(0.5, 0.1) < min_certifiable(0.9, 0.1) < min_certifiable(0.95, 0.1)
    assert min_certifiable(0.95, 0.1) < min_certifiable(0.95, 0.01)
    assert 40 <= min_certifiable(0.95, 0.1) <= 50  # 0.95^n < 0.1 from n = 45


def rows(n, seed=0):
    """Half the rows carry a sentiment word (the embedding student learns those); the other half are
    'code N' rows whose label is N's parity, which a bag of words cannot learn but the student can."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2:
            out.append(f"a {rng.choice(['great', 'lovely'] if i % 4 == 1 else ['awful', 'dull'])} film {i}")
        else:
            out.append(f"code {rng.randrange(1000)}")
    return out


def truth(text):
    if text.startswith("code"):
        return "pos" if int(text.split()[1]) % 2 == 0 else "neg"
    return "pos" if ("great" in text or "lovely" in text) else "neg"


def label_reply(request):
    text = request.messages[-1].content
    row = text.split("row:", 1)[-1] if "row:" in text else text
    for word in row.split():
        if word.isdigit() and "code" in row:
            return json.dumps({"label": "pos" if int(word) % 2 == 0 else "neg"})
    return json.dumps({"label": "pos" if ("great" in row or "lovely" in row) else "neg"})


def scripted_student(reply):
    def fit(self, step, field_name, texts, labels):
        assert len(texts) == len(labels) and set(labels) <= {"pos", "neg"}  # trained on the reference labels
        model = ScriptedBackend(reply, model="lora-student", latency_s=0.002)
        return step.with_(model=model, instructions="", demos=[], name="lora student"), {
            "folder": "x",
            "examples": len(texts),
            "adapter_sha256": "0" * 64,
            "merged": None,  # merging: test_distill_merged
            "train": {"cpu_s": 1.0},
        }

    return fit


def test_a_picked_student_becomes_the_middle_stage_and_takes_the_rows_the_embedding_student_passes_on(monkeypatch):
    monkeypatch.setattr(LoraStudent, "fit", scripted_student(label_reply))
    texts = rows(3000)
    teacher = ScriptedBackend(label_reply, model="teacher", latency_s=0.002)
    lora = LoraStudent(payback=0.0)  # the scripted teacher costs no CPU: any saving pays
    cascade, report = run_sync(teach(texts, ["pos", "neg"], teacher=teacher, label_budget=300, lora=lora))
    assert report["lora"]["picked"] and report["lora"]["certified"]
    assert [s.name for s in cascade.stages] == ["proxy", "lora student", "teacher"]
    held = report["lora"]["calibration_rows"]
    assert held >= min_certifiable(report["threshold"]["target"], 0.1)
    before = len(teacher.requests)
    job = [t for t in texts[-400:] if t not in cascade.known]
    outs = [cascade(row=t)["label"] for t in job]
    assert outs == [truth(t) for t in job]
    assert cascade.answered_by["lora student"] > 0.3 * len(job)
    assert len(teacher.requests) - before < 0.05 * len(job)


def test_a_student_that_fails_its_certificate_is_skipped_and_the_teacher_answers(monkeypatch):
    monkeypatch.setattr(LoraStudent, "fit", scripted_student(lambda r: json.dumps({"label": "pos"})))
    texts = rows(3000)
    teacher = ScriptedBackend(label_reply, model="teacher", latency_s=0.002)
    cascade, report = run_sync(
        teach(texts, ["pos", "neg"], teacher=teacher, label_budget=300, lora=LoraStudent(payback=0.0))
    )
    assert report["lora"]["picked"] and not report["lora"]["certified"]
    job = [t for t in texts[-200:] if t not in cascade.known and t.startswith("code")]
    assert [cascade(row=t)["label"] for t in job] == [truth(t) for t in job]
    assert cascade.answered_by["lora student"] == 0 and cascade.answered_by["teacher"] == len(job)


def test_a_short_job_trains_no_student(monkeypatch):
    def never(*a, **k):
        raise AssertionError("a short job must not train a student")

    monkeypatch.setattr(LoraStudent, "fit", never)
    teacher = ScriptedBackend(label_reply, model="teacher", latency_s=0.002)
    cascade, report = run_sync(teach(rows(120), ["pos", "neg"], teacher=teacher, lora=LoraStudent()))
    assert not report["lora"]["picked"] and [s.name for s in cascade.stages] == ["proxy", "teacher"]
