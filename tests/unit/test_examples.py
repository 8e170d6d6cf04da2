"""auto with a few labels from the user (``optimize.examples``): the teacher's accuracy on them is measured
and its answers counted, a weak teacher is named in the summary and beaten by a student certified against
gold, the 1.05x guarantee holds with examples, bad examples are refused with the fix. The teachers are
scripted backends that burn real CPU per call (tests/unit/examples_site/examples_fakes.py)."""

import random
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import compound
from compound.core.concurrency import run_sync
from compound.core.usage import track_usage
from compound.optimize.examples import GOLD_STAGE, MIN_EXAMPLES, Examples, ExamplesError, check_examples, repeats
from compound.optimize.labels import label_step
from compound.optimize.planner import Costs
from compound.optimize.staged import TARGET, labelled_step, plan_and_answer, summary_line
from compound.tables.jobs import process_table
from compound.tables.operators import classify

SITE = Path(__file__).parent / "examples_site"
sys.path.insert(0, str(SITE))
import examples_fakes as fakes  # noqa: E402

CHEAP = Costs(**fakes.CHEAP_PRIORS)


@pytest.fixture(autouse=True)
def hashed_embeddings(monkeypatch):
    monkeypatch.setattr("compound.optimize.staged.embed_texts", fakes.hashed_embed)
    import sklearn.cluster  # noqa: F401  # imported once, before any measured job
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401


def weak_teacher():
    return fakes.teacher(fakes.weakly, "weak")


def run(texts, model, examples=None, **kw):
    step = labelled_step(label_step(fakes.LABELS, model, "topic"), "topic")
    with compound.context(cache=False), track_usage() as used:
        program, report = run_sync(plan_and_answer(texts, step, examples=examples, encoder=False, **kw))
        answers = [program(row=t)["topic"] for t in texts]
        job = used.total.cpu_s
    return program, report, answers, job


def gold(n, start, seed=7):
    return Examples(tuple(fakes.rows(n, seed=seed, start=start)), "gold.csv")


def accuracy(texts, answers):
    return sum(a == fakes.truth(t) for a, t in zip(answers, texts, strict=True)) / len(texts)


def test_a_weak_teacher_is_measured_named_and_beaten_by_a_student_certified_against_the_examples():
    texts = [t for t, _ in fakes.rows(1200)]
    model = weak_teacher()
    examples = gold(60, start=10_000)
    program, report, answers, total = run(texts, model, examples, costs=CHEAP)
    ex = report["examples"]
    # the teacher's accuracy on the held-out examples (about half), measured (it is wrong on 40% of rows)
    hold = examples.split()[1]
    assert ex["held_out"] == len(hold) == 30 and 0.45 <= ex["teacher_accuracy"] <= 0.75
    assert report["target"] == pytest.approx(ex["teacher_accuracy"])  # the target: the teacher's accuracy
    assert ex["against_gold"] and not ex["teacher_labels_train"]  # too weak to teach
    # its answers on the held-out examples were asked (and counted): each once, beside the job's rows
    asked = Counter(r.messages[-1].content for r in model.requests)
    assert max(asked.values()) == 1
    held = [t for t, _ in examples.rows if f"row: {t}" in asked]
    assert len(held) == len(hold)
    student = report["stages"]["embedding student"]
    assert student["certified"] and student["gold"]["accuracy"] > ex["teacher_accuracy"] + 0.2
    assert report["rows_by_stage"]["embedding student"] > 0.6 * len(texts)
    # so the job is more accurate than the teacher alone would be, at a fraction of its cost
    teacher_alone = sum(fakes.weakly(t) == fakes.truth(t) for t in texts) / len(texts)
    assert accuracy(texts, answers) > teacher_alone + 0.2
    assert total < 0.5 * len(texts) * report["teacher_cpu_per_row"]
    line = summary_line(report, {"cpu_s": 0.0})
    assert f"the teacher's accuracy on the held-out examples: {ex['teacher_accuracy']:.3f}" in line
    assert "the teacher is weak:" in line and "Give more examples (about 120" in line
    assert f"right (against the gold of {len(hold)} held-out examples)" in line and "did not train the students" in line


def test_a_strong_teacher_with_few_examples_is_not_called_weak_and_its_labels_certify():
    texts = [t for t, _ in fakes.rows(1200)]
    program, report, answers, total = run(
        texts, fakes.teacher(fakes.truth, "strong"), gold(40, start=10_000), costs=CHEAP, target=None
    )
    ex = report["examples"]
    assert ex["teacher_accuracy"] == 1.0 and ex["weak"] == [] and "ask" not in ex
    # 20 held-out examples cannot certify anything at the teacher's 0.97: agreement with its labels is used
    assert not ex["against_gold"] and ex["teacher_labels_train"] and report["target"] == TARGET
    assert ex["repeats"] >= 1 and report["certified"]
    assert accuracy(texts, answers) >= 0.97
    line = summary_line(report, {"cpu_s": 0.0})
    assert f"agree with the teacher's at target {TARGET:.3f}" in line and "too few to certify" in line
    assert "teacher is weak" not in line


@pytest.mark.parametrize("n", [80, 240])
def test_with_examples_a_short_job_still_never_costs_more_than_1_05x_the_large_model_alone(n):
    texts = [t for t, _ in fakes.rows(n)]
    model = weak_teacher()
    program, report, answers, total = run(texts, model, gold(60, start=10_000))
    large = n * report["teacher_cpu_per_row"]
    assert total <= 1.05 * large + 0.05  # one-time costs included; 0.05 s: the clock's granularity
    assert "too short to measure the teacher on the examples" in report["plan"] and "--target" in report["plan"]
    assert report["examples"]["teacher_accuracy"] is None
    line = summary_line(report, {"cpu_s": 0.0})
    assert "the teacher's accuracy on them was not measured" in line
    asked = Counter(r.messages[-1].content for r in model.requests)
    assert len(asked) == n and max(asked.values()) == 1  # the job's rows only, each once


def test_labelled_rows_of_the_input_are_the_examples_and_their_answers_are_their_own_labels():
    data = fakes.rows(300, seed=3)
    labelled = set(random.Random(1).sample(range(300), 60))  # 60 rows labelled by the user
    df = pd.DataFrame(
        {"text": [t for t, _ in data], "gold": [g if i in labelled else None for i, (_, g) in enumerate(data)]}
    )
    model = weak_teacher()
    with compound.context(cache=False), track_usage() as used:
        op = classify(df, "topic", fakes.LABELS, input_columns=["text"], model=model, program="auto",
                      label_column="gold")  # fmt: skip
        result = process_table(op, df)
    report = op.setup
    ex = report["examples"]
    assert ex["among_the_rows"] == 60 and ex["source"] == "the input's label column 'gold'"
    assert report["rows_by_stage"][GOLD_STAGE] == 60
    out = result.df
    for i in labelled:  # a labelled row's answer is its label, right or wrong the teacher was on it
        assert out["topic"][i] == data[i][1]
    # the teacher's answers on the 30 held-out labelled rows cost what the large model alone pays for them;
    # the 30 training ones are never asked
    asked = {r.messages[-1].content for r in model.requests}
    assert sum(f"row: text: {data[i][0]}" in asked for i in labelled) == 30
    large = len(df) * report["teacher_cpu_per_row"]
    assert used.total.cpu_s <= 1.05 * large + 0.05
    assert "gold" not in op.spec["input_columns"]  # the students and the model never read the answer


def test_examples_from_a_file_go_through_the_table_operator(tmp_path):
    data = fakes.rows(200)
    df = pd.DataFrame({"text": [t for t, _ in data]})
    path = tmp_path / "gold.jsonl"
    pd.DataFrame([{"text": t, "topic": g} for t, g in fakes.rows(30, seed=9, start=5000)]).to_json(
        path, orient="records", lines=True
    )
    with compound.context(cache=False):
        op = classify(df, "topic", fakes.LABELS, input_columns=["text"], model=weak_teacher(), program="auto",
                      examples=str(path), target=0.7)  # fmt: skip
    assert op.setup["examples"]["source"] == str(path) and op.setup["examples"]["examples"] == 30
    assert op.setup["examples"]["target_from"] == "--target" and op.setup["target"] == 0.7
    with pytest.raises(compound.ConfigurationError, match='add program="auto"'):
        classify(df, "topic", fakes.LABELS, input_columns=["text"], model=weak_teacher(), examples=str(path))


def triples(n, label=lambda i: fakes.LABELS[i % 3]):
    return [(f"row {i + 1}", f"text: item {i}", label(i)) for i in range(n)]


def test_bad_examples_are_refused_naming_the_row_and_the_fix():
    ok = check_examples(triples(MIN_EXAMPLES), fakes.LABELS, "gold.csv")
    assert len(ok.rows) == MIN_EXAMPLES
    train, hold = ok.split()
    assert len(hold) == len(train) == MIN_EXAMPLES // 2 and not set(train) & set(hold)
    assert {ok.rows[i][1] for i in hold} == set(fakes.LABELS)  # every label held out
    with pytest.raises(ExamplesError, match=r"19 example\(s\); at least 20 are needed: half are held out"):
        check_examples(triples(19), fakes.LABELS, "gold.csv")
    with pytest.raises(ExamplesError, match=r"labels not among --labels: 'politics' \(2 rows\), first at row 4"):
        check_examples(triples(30, lambda i: "politics" if i in (3, 8) else "food"), fakes.LABELS, "gold.csv")
    with pytest.raises(ExamplesError, match="row 6: the label is empty"):
        check_examples(triples(30, lambda i: "" if i == 5 else "food"), fakes.LABELS, "gold.csv")
    twice = triples(30) + [("row 31", "text: item 2", "food")]
    with pytest.raises(ExamplesError, match=r"row 3 and row 31 are the same row with two labels \('tech', 'food'\)"):
        check_examples(twice, fakes.LABELS, "gold.csv")
    again = triples(30) + [("row 31", "text: item 2", "tech")]
    with pytest.raises(ExamplesError, match="row 3 and row 31 are the same row; give each example once"):
        check_examples(again, fakes.LABELS, "gold.csv")
    assert len(check_examples(again, fakes.LABELS, "gold", repeats_allowed=True).rows) == 30  # counted once


def test_examples_weigh_as_much_as_the_teacher_labels_within_bounds():
    assert repeats(30, 0) == 1 and repeats(30, 300) == 8 and repeats(30, 90) == 3 and repeats(0, 90) == 0


def cli_env():
    src = Path(compound.__file__).resolve().parents[1]
    return {"PYTHONPATH": f"{src}:{SITE}", "EXAMPLES_FAKES": "1", "COLUMNS": "400"}


def test_table_classify_auto_with_examples_warns_of_a_weak_teacher_through_the_console_script(compound_cli, tmp_path):
    data = fakes.rows(1000)
    pd.DataFrame({"id": range(len(data)), "text": [t for t, _ in data]}).to_csv(tmp_path / "news.csv", index=False)
    gold_rows = fakes.rows(60, seed=5, start=20_000)
    pd.DataFrame({"text": [t for t, _ in gold_rows], "topic": [g for _, g in gold_rows]}).to_csv(
        tmp_path / "gold.csv", index=False
    )
    args = ["table", "classify", tmp_path / "news.csv", "-c", "topic", "--labels", ",".join(fakes.LABELS),
            "--input-columns", "text", "--auto", "--examples", tmp_path / "gold.csv", "--model", "weak-teacher",
            "--no-progress"]  # fmt: skip
    proc = compound_cli(*args, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "examples: 60 from" in out and "30 train the students, 30 held out" in out
    assert "the teacher's accuracy on the held-out examples: 0." in out and "the teacher is weak:" in out
    assert "Give more examples" in out and "embedding student:" in out
    written = pd.read_csv(tmp_path / "news.classify.csv")
    got = sum(a == g for a, (_, g) in zip(written["topic"], data, strict=True)) / len(data)
    weak = sum(fakes.weakly(t) == g for t, g in data) / len(data)
    assert weak == pytest.approx(0.6, abs=0.01) and got > weak + 0.2  # the students beat their teacher


def test_table_classify_auto_takes_labelled_rows_of_the_input_through_the_console_script(compound_cli, tmp_path):
    data = fakes.rows(240, seed=2)
    labelled = set(random.Random(4).sample(range(len(data)), 40))
    frame = pd.DataFrame({"text": [t for t, _ in data], "gold": [g if i in labelled else "" for i, (_, g) in
                                                                  enumerate(data)]})  # fmt: skip
    frame.to_csv(tmp_path / "news.csv", index=False)
    args = ["table", "classify", tmp_path / "news.csv", "-c", "topic", "--labels", ",".join(fakes.LABELS),
            "--auto", "--label-column", "gold", "--model", "weak-teacher", "--no-progress"]  # fmt: skip
    proc = compound_cli(*args, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "examples: 40 from the input's label column 'gold'" in out and "40 are rows of the job" in out
    assert "example (gold) 40" in out
    written = pd.read_csv(tmp_path / "news.classify.csv")
    assert all(written["topic"][i] == data[i][1] for i in labelled)
    assert list(written.columns) == ["text", "gold", "topic"]


def test_the_forecast_before_the_run_counts_the_teachers_answers_on_the_examples(tmp_path):
    from compound.tables.operators import classify_forecast

    df = pd.DataFrame({"text": [t for t, _ in fakes.rows(1500)]})
    gold_rows = pd.DataFrame([{"text": t, "topic": g} for t, g in fakes.rows(40, seed=9, start=5000)])
    with compound.context(cache=False):
        forecast, record = classify_forecast(
            df, "topic", fakes.LABELS, input_columns=["text"], model=weak_teacher(), examples=gold_rows
        )
    stages = {s.name: s for s in forecast.stages}
    measured = stages["teacher on the held-out examples"]
    assert measured.one_time == pytest.approx(20 * forecast.costs.teacher) and measured.share == 0
    assert "embedding student" in stages
    bad = gold_rows.assign(topic="politics")
    with pytest.raises(ExamplesError, match="politics"):  # checked before the teacher is asked anything
        classify_forecast(df, "topic", fakes.LABELS, input_columns=["text"], model=weak_teacher(), examples=bad)
