import json

import pytest

import compound
from compound import BootstrapFewShot, InstructionSearch, KNNFewShot, ScriptedBackend
from compound.optimize.knn import KNNPredict
from compound.program.predict import Predict
from compound.store.traces import trace_store

SIG = "text -> label"


def truth(text: str) -> str:
    return "pos" if "good" in text else "neg"


def last_text(request) -> str:
    return request.messages[-1].content.removeprefix("text: ")


def student_fn(request):
    """Answers right only when it was shown demos, or told to look for the word 'good'; else always neg."""
    informed = len(request.messages) > 2 or "good" in request.messages[0].content
    return json.dumps({"label": truth(last_text(request)) if informed else "neg"})


def teacher_fn(request):
    if "improve the instructions" in request.messages[-1].content:
        return json.dumps({"instructions": "Answer pos when the text says good, else neg."})
    return json.dumps({"label": truth(last_text(request))})


def data(n, offset=0):
    words = ["good film", "bad film", "good plot", "dull plot", "so good", "awful"]
    return [{"text": f"{words[i % len(words)]} #{i + offset}", "label": truth(words[i % len(words)])} for i in range(n)]


@pytest.fixture(autouse=True)
def bag_of_words_embeddings(monkeypatch):
    """A fast stand-in for MiniLM (unit tests must not load torch): unit-length hashed bags of words."""
    import numpy as np

    def embed(texts, model_path=None):
        out = np.zeros((len(texts), 64), dtype="float32")
        for i, t in enumerate(texts):
            for w in t.replace("#", " ").split():
                if not w.isdigit():
                    out[i, sum(map(ord, w)) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    monkeypatch.setattr("compound.optimize.students.embedding.embed_texts", embed)


def backends():
    return (
        ScriptedBackend(student_fn, model="student", latency_s=0.01),
        ScriptedBackend(teacher_fn, model="teacher", latency_s=0.01),
    )


def accuracy(program, rows):
    return sum(program(text=r["text"]).label == r["label"] for r in rows) / len(rows)


def test_bootstrap_learns_demos_that_help_and_leaves_the_original_alone():
    student, teacher = backends()
    program = Predict(SIG, model=student)
    assert accuracy(program, data(12, 100)) == 0.5
    tuned = BootstrapFewShot(teacher, max_demos=3, candidates=3).compile(program, data(12), data(8, 50))
    assert program.demos == []
    assert 1 <= len(tuned.demos) <= 3 and all(d["label"] == truth(d["text"]) for d in tuned.demos)
    assert accuracy(tuned, data(12, 100)) == 1.0


def test_instruction_search_keeps_a_better_proposal():
    student, teacher = backends()
    program = Predict(SIG, model=student, instructions="Label the text.")
    search = InstructionSearch(teacher, rounds=3)
    tuned = search.compile(program, data(10))
    assert "good" in tuned.instructions
    assert accuracy(tuned, data(12, 100)) == 1.0
    assert [h["score"] for h in search.report["history"]] == [0.5, 1.0]


def test_knn_picks_the_nearest_examples_as_demos():
    student, _ = backends()
    program = Predict(SIG, model=student)
    tuned = KNNFewShot(k=2).compile(program, data(12))
    assert isinstance(tuned, KNNPredict) and not isinstance(program, KNNPredict)
    near = tuned.neighbours({"text": "good plot #7"})
    assert any("good plot" in d["text"] for d in near)
    assert accuracy(tuned, data(6, 100)) == 1.0
    assert list((compound.get_settings().home / "knn").glob("*.npy"))  # the index is on disk, no pickle


@pytest.mark.parametrize("kind", ["bootstrap", "instructions"])
@pytest.mark.parametrize("cap", [3, 9, 25])
def test_no_optimizer_exceeds_a_budget_cap(kind, cap):
    student, teacher = backends()
    program = Predict(SIG, model=student, instructions="Label the text.")
    optimizer = (
        BootstrapFewShot(teacher, max_demos=3, candidates=4) if kind == "bootstrap" else InstructionSearch(teacher)
    )
    with compound.budget(calls=cap) as b:
        tuned = optimizer.compile(program, data(12), data(10, 50))
    assert b.used.calls <= cap
    assert b.reserved_calls == 0
    assert isinstance(tuned, Predict)
    if cap < 10:  # fewer calls than one pass over the data: the search must have been stopped by the cap
        assert optimizer.report["stopped"].startswith("budget")


def test_optimizer_calls_are_traced_under_their_own_run():
    student, teacher = backends()
    optimizer = BootstrapFewShot(teacher, max_demos=2, candidates=1)
    optimizer.compile(Predict(SIG, model=student), data(6))
    spans = trace_store().run_spans(optimizer.report["run_id"])
    models = {s["name"] for s in spans if s["kind"] == "llm"}
    assert models == {"scripted:student", "scripted:teacher"} or models == {"student", "teacher"}
    assert sum(s["kind"] == "llm" for s in spans) == optimizer.report["usage"]["calls"]


@pytest.mark.parametrize("kind", ["bootstrap", "knn", "instructions"])
def test_a_saved_optimized_program_loads_and_answers_the_same(tmp_path, kind):
    student, teacher = backends()
    program = Predict(SIG, model=student, instructions="Label the text.")
    optimizer = {
        "bootstrap": BootstrapFewShot(teacher, max_demos=3, candidates=2),
        "knn": KNNFewShot(k=3),
        "instructions": InstructionSearch(teacher, rounds=2),
    }[kind]
    tuned = optimizer.compile(program, data(12), data(6, 50))
    path = tuned.save(tmp_path / "tuned.json")
    cls = KNNPredict if kind == "knn" else Predict
    loaded = cls.load(path, SIG, model=student)
    rows = data(8, 200)
    assert [loaded(text=r["text"]).model_dump() for r in rows] == [tuned(text=r["text"]).model_dump() for r in rows]
    assert loaded.named_parameters() == tuned.named_parameters()


class TwoSteps(compound.Module):
    """Find the text's key word, then label the key word: the label only follows from the first step."""

    def __init__(self, model):
        self.find = Predict("text -> word", model=model)
        self.judge = Predict("word -> label", model=model)

    async def aforward(self, text: str):
        word = (await self.find.acall(text=text)).word
        return await self.judge.acall(word=word)


def two_step_fn(informed_only: bool):
    """``find`` answers the text's first word; ``judge`` labels it. A student answers right only when the
    step was shown demos; the teacher (``informed_only=False``) is right except on 'so good' rows."""

    def reply(request):
        shown = len(request.messages) > 2
        content = request.messages[-1].content
        if content.startswith("text: "):
            text = content.removeprefix("text: ")
            wrong = not informed_only and text.startswith("so good")
            return json.dumps({"word": "awful" if wrong else text.split()[0] if shown or not informed_only else "x"})
        word = content.removeprefix("word: ")
        right = shown or not informed_only
        return json.dumps({"label": ("pos" if word in ("good", "so") else "neg") if right else "neg"})

    return reply


def test_bootstrap_tunes_every_step_of_a_program_from_whole_runs_that_pass_the_metric():
    student = ScriptedBackend(two_step_fn(True), model="two-student", latency_s=0.005)
    teacher = ScriptedBackend(two_step_fn(False), model="two-teacher", latency_s=0.005)
    program = TwoSteps(student)

    def metric(example, prediction):
        return float(prediction is not None and prediction.label == example["label"])

    before = sum(metric(r, program(text=r["text"])) for r in data(12, 100)) / 12
    optimizer = BootstrapFewShot(teacher, max_demos=3, candidates=3)
    tuned = optimizer.compile(program, data(12), data(8, 50), metric=metric)
    after = sum(metric(r, tuned(text=r["text"])) for r in data(12, 100)) / 12
    assert program.find.demos == [] and program.judge.demos == []
    assert tuned.find.demos and tuned.judge.demos  # demos for each step, from the same runs
    assert [d["text"].split()[0] for d in tuned.find.demos] == [d["word"] for d in tuned.find.demos]
    assert [d["word"] for d in tuned.find.demos] == [d["word"] for d in tuned.judge.demos]
    assert not any(d["text"].startswith("so good") for d in tuned.find.demos)  # a failing run gave no demo
    assert optimizer.report["bootstrapped"] == 12 - sum(r["text"].startswith("so good") for r in data(12))
    assert before == 0.5 and after == 1.0
    forecast = optimizer.forecast(program, data(12), data(8, 50))
    assert forecast == {"teacher_runs": 12, "scoring_runs": 5 * 8, "runs": 52, "step_calls": 104}
    assert optimizer.report["usage"]["calls"] <= forecast["step_calls"]


def test_a_program_of_several_steps_needs_a_metric():
    student = ScriptedBackend(two_step_fn(True), model="two-student")
    with pytest.raises(compound.ConfigurationError, match="several steps needs metric="):
        BootstrapFewShot(student).compile(TwoSteps(student), data(4))
