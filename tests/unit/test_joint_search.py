"""JointSearch: per-step instructions and demos searched together on minibatches, under the budget.

The scripted program needs both at once: its first step answers right only under instructions that say
to take the first word (which only one of the proposer's tips draws out), its second step only when shown
demos. Neither an instruction search nor a demo search alone gets it past half right."""

import json

import pytest

import compound
from compound import BootstrapFewShot, JointSearch, ScriptedBackend
from compound.program.predict import Predict

WORDS = ["good film", "bad film", "good plot", "dull plot", "so good", "awful"]


def truth(text: str) -> str:
    return "pos" if "good" in text else "neg"


def data(n, offset=0):
    return [{"text": f"{WORDS[i % len(WORDS)]} #{i + offset}", "label": truth(WORDS[i % len(WORDS)])} for i in range(n)]


class TwoSteps(compound.Module):
    def __init__(self, model):
        self.find = Predict("text -> word", model=model, instructions="Answer a word.")
        self.judge = Predict("word -> label", model=model, instructions="Label the word.")

    async def aforward(self, text: str):
        word = (await self.find.acall(text=text)).word
        return await self.judge.acall(word=word)


def proposal(request) -> str | None:
    """The proposer: only the tip about what to look for first gets the find step's fix written."""
    content = request.messages[-1].content
    if "instructions of one step" not in content:
        return None
    if "It writes: word" in content:
        fix = "look for first" in content
        return json.dumps({"instructions": "Answer the first word of the text." if fix else "Answer the word."})
    return json.dumps({"instructions": "Label the word as pos or neg."})


def student_fn(request):
    if (proposed := proposal(request)) is not None:
        return proposed
    system = request.messages[0].content if request.messages[0].role == "system" else ""
    shown = sum(m.role == "assistant" for m in request.messages) > 0
    content = request.messages[-1].content
    if content.startswith("text: "):
        text = content.removeprefix("text: ")
        return json.dumps({"word": text.split()[0] if "first word" in system else "x"})
    word = content.removeprefix("word: ")
    return json.dumps({"label": ("pos" if word in ("good", "so") else "neg") if shown else "neg"})


def teacher_fn(request):
    """Right on every step, except that it finds the wrong word on 'so good' rows."""
    if (proposed := proposal(request)) is not None:
        return proposed
    content = request.messages[-1].content
    if content.startswith("text: "):
        text = content.removeprefix("text: ")
        return json.dumps({"word": "awful" if text.startswith("so good") else text.split()[0]})
    word = content.removeprefix("word: ")
    return json.dumps({"label": "pos" if word in ("good", "so") else "neg"})


def metric(example, prediction):
    return float(prediction is not None and prediction.label == example["label"])


def score(program, rows):
    return sum(metric(r, program(text=r["text"])) for r in rows) / len(rows)


def backends():
    return (
        ScriptedBackend(student_fn, model="joint-student", latency_s=0.005),
        ScriptedBackend(teacher_fn, model="joint-teacher", latency_s=0.005),
    )


def search(teacher, **kw):
    return JointSearch(teacher, **{"instructions": 3, "demo_sets": 3, "trials": 10, "minibatch": 6, **kw})


def test_joint_search_finds_the_instructions_and_demos_that_only_help_together():
    student, teacher = backends()
    program = TwoSteps(student)
    held_out = data(12, 100)
    assert score(program, held_out) == 0.5
    demos_only = BootstrapFewShot(teacher, max_demos=3, candidates=3).compile(
        program, data(12), data(12, 50), metric=metric
    )
    assert score(demos_only, held_out) == 0.5  # demos alone do not fix the first step

    optimizer = search(teacher)
    tuned = optimizer.compile(program, data(12), data(12, 50), metric=metric)
    assert score(tuned, held_out) == 1.0
    assert tuned.find.instructions == "Answer the first word of the text."
    assert tuned.judge.demos and tuned.find.demos
    assert not any(d["text"].startswith("so good") for d in tuned.find.demos)  # from passing runs only
    assert [d["text"].split()[0] for d in tuned.find.demos] == [d["word"] for d in tuned.find.demos]
    assert (program.find.instructions, program.find.demos, program.judge.demos) == ("Answer a word.", [], [])

    report = optimizer.report
    assert report["baseline_score"] == 0.5 and report["best_score"] == 1.0
    assert report["chosen"]["find"]["instructions"] == 2  # current, "Answer the word.", the fix
    assert report["candidates"]["find"]["instructions"][2] == "Answer the first word of the text."
    assert 0 < len(report["trials"]) <= 10 and all(t["rows"] == 6 for t in report["trials"])
    assert report["bootstrapped"] == 12 - sum(r["text"].startswith("so good") for r in data(12))


def test_the_forecast_bounds_what_the_search_spends_when_every_reply_parses():
    student, teacher = backends()
    optimizer = search(teacher)
    forecast = optimizer.forecast(TwoSteps(student), data(12), data(12, 50))
    # 12 teacher runs; the program as it is on 12 rows, 10 minibatches of 6, 3 whole-valset checks of 12
    assert forecast == {
        "teacher_runs": 12,
        "scoring_runs": 12 + 60 + 36,
        "runs": 120,
        "proposal_calls": 6,
        "step_calls": 240,
        "calls": 246,
    }
    optimizer.compile(TwoSteps(student), data(12), data(12, 50), metric=metric)
    spent = optimizer.report["usage"]["calls"]
    assert 0.5 * forecast["calls"] <= spent <= forecast["calls"]


@pytest.mark.parametrize("cap", [5, 40, 120])
def test_a_budget_stops_the_search_with_the_best_program_so_far(cap):
    student, teacher = backends()
    program = TwoSteps(student)
    optimizer = search(teacher)
    with compound.budget(calls=cap) as b:
        tuned = optimizer.compile(program, data(12), data(12, 50), metric=metric)
    assert b.used.calls <= cap and b.reserved_calls == 0
    assert optimizer.report["stopped"].startswith("budget")
    assert isinstance(tuned, TwoSteps)
    assert score(tuned, data(12, 50)) >= score(program, data(12, 50))  # never worse than the program given


def test_a_search_where_everything_hurts_keeps_the_program_as_it_was():
    def contrary(request):
        """Right as it is; any demo or any other instruction makes it wrong."""
        if (proposed := proposal(request)) is not None:
            return proposed
        system = request.messages[0].content if request.messages[0].role == "system" else ""
        spoiled = any(m.role == "assistant" for m in request.messages) or "Answer a word." not in system
        content = request.messages[-1].content
        if content.startswith("text: "):
            return json.dumps({"word": "x" if spoiled else content.removeprefix("text: ").split()[0]})
        right = "pos" if content.removeprefix("word: ") in ("good", "so") else "neg"
        return json.dumps({"label": ("neg" if right == "pos" else "pos") if spoiled else right})

    model = ScriptedBackend(contrary, model="contrary", latency_s=0.002)
    _, teacher = backends()
    program = TwoSteps(model)
    program.judge.instructions = "Answer a word."  # the judge's own instructions are fine as they are too
    optimizer = search(teacher)
    tuned = optimizer.compile(program, data(12), data(12, 50), metric=metric)
    assert optimizer.report["baseline_score"] == 1.0 and optimizer.report["trials"]
    assert all(t["minibatch_score"] < 1.0 for t in optimizer.report["trials"])
    assert tuned.named_parameters() == program.named_parameters()


def test_a_jointly_tuned_program_saves_and_loads_every_step(tmp_path):
    student, teacher = backends()
    tuned = search(teacher).compile(TwoSteps(student), data(12), data(12, 50), metric=metric)
    path = tuned.save(tmp_path / "tuned.json")
    saved = json.loads(path.read_text())["parameters"]
    assert saved["find.instructions"] == "Answer the first word of the text." and saved["judge.demos"]
    loaded = TwoSteps.load(path, student)
    assert loaded.named_parameters() == tuned.named_parameters()
    rows = data(8, 300)
    assert [loaded(text=r["text"]).label for r in rows] == [tuned(text=r["text"]).label for r in rows]


def test_joint_search_tunes_a_single_step_too():
    student, teacher = backends()
    step = Predict("word -> label", model=student, instructions="Label the word.")
    rows = [{"word": r["text"].split()[0], "label": r["label"]} for r in data(12)]
    val = [{"word": r["text"].split()[0], "label": r["label"]} for r in data(12, 50)]
    tuned = search(teacher, trials=4).compile(step, rows, val)
    assert isinstance(tuned, Predict) and tuned.demos and step.demos == []
    assert sum(tuned(word=r["word"]).label == r["label"] for r in val) == len(val)


def test_a_one_step_optimizer_given_several_steps_names_the_ones_that_take_them():
    student, _ = backends()
    with pytest.raises(compound.ConfigurationError, match="use BootstrapFewShot or JointSearch"):
        compound.KNNFewShot(k=2).compile(TwoSteps(student), data(4), metric=metric)
