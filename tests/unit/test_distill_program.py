"""Distill on a program of several steps: each step's answers in the teacher's whole-program runs become
that step's lessons, and each step gets its own student (LoRA per step, training faked here as in
test_distill; or the nearest lessons as demos, no training)."""

import json

import pytest

from compound import ConfigurationError, ScriptedBackend
from compound.optimize.distill import Distill, pipeline
from compound.optimize.knn import KNNPredict
from unit.test_optimize import TwoSteps, bag_of_words_embeddings  # noqa: F401  (autouse: hashed bags of words, no torch)

WORDS = ["good film", "bad film", "good plot", "dull plot", "so good", "awful"]


def truth(text):
    return "pos" if "good" in text else "neg"


def rows(n, offset=0, gold=True):
    out = [{"text": f"{WORDS[i % len(WORDS)]} #{i + offset}", "label": truth(WORDS[i % len(WORDS)])} for i in range(n)]
    return out if gold else [{"text": r["text"]} for r in out]


def phrase(content):
    return content.removeprefix("text: ").split(" #")[0]


def reply_fn(student: bool):
    """The teacher finds each text's first word (but 'awful' for 'so good') and labels it. The student
    does either only when shown demos (else 'x' and 'neg'), and copies a demo's word when the demo's text
    has the same phrase as the input (else takes the first word): it learns what its lessons say."""

    def reply(request):
        msgs = request.messages
        shown = any(m.role == "assistant" for m in msgs)
        content = msgs[-1].content
        if content.startswith("text: "):
            text = content.removeprefix("text: ")
            if not student:
                return json.dumps({"word": "awful" if text.startswith("so good") else text.split()[0]})
            if not shown:
                return json.dumps({"word": "x"})
            pairs = [
                (u.content, a.content)
                for u, a in zip(msgs, msgs[1:], strict=False)
                if u.role == "user" and a.role == "assistant"
            ]
            same = [json.loads(a)["word"] for u, a in pairs if phrase(u) == phrase(content)]
            return json.dumps({"word": same[-1] if same else text.split()[0]})
        word = content.removeprefix("word: ")
        right = "pos" if word in ("good", "so") else "neg"
        return json.dumps({"label": right if shown or not student else "neg"})

    return reply


def backends():
    return (
        ScriptedBackend(reply_fn(True), model="distill-student", latency_s=0.005),
        ScriptedBackend(reply_fn(False), model="distill-teacher", latency_s=0.005),
    )


def metric(example, prediction):
    return float(prediction.label == example["label"])


def accuracy(program, data):
    return sum(metric(r, program(text=r["text"])) for r in data) / len(data)


def test_knn_students_learn_each_step_from_the_teachers_whole_runs(tmp_path):
    student, teacher = backends()
    program = TwoSteps(student)
    distilled = Distill(teacher, student=student, out=tmp_path / "d", method="knn", k=3).compile(
        program, rows(12, gold=False)
    )
    assert isinstance(distilled.find, KNNPredict) and isinstance(distilled.judge, KNNPredict)
    assert not isinstance(program.find, KNNPredict)  # the program passed in is not changed
    find, judge = distilled.find.examples, distilled.judge.examples
    assert len(find) == len(judge) == 12  # no metric: every run's answers are lessons, wrong ones too
    assert [e["word"] for e in find] == [e["word"] for e in judge]  # the same runs, step by step
    assert {e["word"] for e in find if e["text"].startswith("so good")} == {"awful"}
    assert all(e["label"] == ("pos" if e["word"] in ("good", "so") else "neg") for e in judge)
    assert distilled.find.model is student
    assert accuracy(program, rows(12, 100)) == 0.5
    assert accuracy(distilled, rows(12, 100)) == pytest.approx(10 / 12)  # 'so good' learnt wrong from the teacher
    record = json.loads((tmp_path / "d" / "program.json").read_text())
    assert record["steps"] == {"find": {"lessons": 12}, "judge": {"lessons": 12}}
    assert record["kept_runs"] == record["runs"] == 12 and record["cost"]["label_calls"] == 24


def test_with_a_metric_only_runs_that_pass_it_teach(tmp_path):
    student, teacher = backends()
    distilled = Distill(teacher, student=student, out=tmp_path / "d", method="knn", k=3).compile(
        TwoSteps(student), rows(12), metric=metric
    )
    assert not any(e["text"].startswith("so good") for e in distilled.find.examples)
    assert len(distilled.find.examples) == 10
    assert accuracy(distilled, rows(12, 100)) == 1.0


def test_lora_students_are_made_per_step_from_that_steps_lessons(tmp_path, monkeypatch):
    from compound.models.lora import file_sha256

    trained: dict[str, list] = {}

    def fake_fit(base, examples, out, cfg, progress=True, check_prompts=4, merge=True):  # training: an integration test
        trained[out.name] = examples
        (out / "adapter.gguf").write_bytes(b"GGUF" + json.dumps(examples).encode())
        return {"adapter_sha256": file_sha256(out / "adapter.gguf"), "merged": None, "merge_cpu_s": 0.0,
                "train": {"cpu_s": 1.0, "losses": [1.0]}}  # fmt: skip

    monkeypatch.setattr(pipeline, "fit_student", fake_fit)
    student, teacher = backends()
    out = tmp_path / "d"
    distilled = Distill(teacher, out=out, samples=1, progress=False).compile(TwoSteps(student), rows(6, gold=False))
    for name in ("find", "judge"):
        assert (
            getattr(distilled, name).model == f"smollm2-135m+lora={(out / 'steps' / name / 'adapter.gguf').resolve()}"
        )
        assert json.loads((out / "steps" / name / "student.json").read_text())["data"]["kept"] == 6
    replies = {name: [json.loads(e["reply"]) for e in trained[name]] for name in ("find", "judge")}
    assert [r["word"] for r in replies["find"]] == ["good", "bad", "good", "dull", "awful", "awful"]
    assert [r["label"] for r in replies["judge"]] == ["pos", "neg", "pos", "neg", "neg", "neg"]
    assert all("word: " in e["messages"][-1]["content"] for e in trained["judge"])  # the judge's own inputs
    assert json.loads((out / "program.json").read_text())["steps"]["find"]["folder"] == str(out / "steps" / "find")


def test_a_step_no_teacher_run_reached_stops_before_training(tmp_path):
    student, teacher = backends()

    class Skips(TwoSteps):
        async def aforward(self, text: str):
            return await self.find.acall(text=text)

    with pytest.raises(ConfigurationError, match=r"reached step\(s\) \['judge'\]"):
        Distill(teacher, student=student, out=tmp_path / "d", method="knn").compile(Skips(student), rows(4))
    with pytest.raises(ConfigurationError, match="lacks the program's input"):
        Distill(teacher, out=tmp_path / "d", method="knn").compile(TwoSteps(student), [{"txt": "a"}])
    with pytest.raises(ConfigurationError, match="method must be 'lora' or 'knn'"):
        Distill(teacher, out=tmp_path / "d", method="svm").compile(TwoSteps(student), rows(4))


def test_a_distilled_program_saves_and_loads_into_the_program_its_constructor_builds(tmp_path):
    student, teacher = backends()
    distilled = Distill(teacher, student=student, out=tmp_path / "d", method="knn", k=3).compile(
        TwoSteps(student), rows(12), metric=metric
    )
    doc = json.loads((tmp_path / "d" / "student.program.json").read_text())
    assert doc["version"] == 2 and doc["modules"]["find"] == "compound.optimize.knn:KNNPredict"
    loaded = TwoSteps.load(tmp_path / "d" / "student.program.json", student)  # built with plain Predict steps
    assert isinstance(loaded.find, KNNPredict) and isinstance(loaded.judge, KNNPredict)
    assert loaded.named_parameters() == distilled.named_parameters()
    held_out = rows(12, 200)
    assert [loaded(text=r["text"]).label for r in held_out] == [distilled(text=r["text"]).label for r in held_out]
