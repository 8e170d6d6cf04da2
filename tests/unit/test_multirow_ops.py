"""The operators over several rows (join, top_k, aggregate, dedup) on a scripted model with latency: what
reaches the model, what comes out, the stated bounds, and resume under one job."""

import json
import math
import re

import pandas as pd
import pytest

import compound
from compound import ScriptedBackend
from compound.core.errors import ContextLengthError
from compound.routing.calibrate import recall_threshold
from compound.tables.jobs import JobStopped, process_table

LATENCY = 0.002
TOPICS = ["billing", "shipping", "login", "refund", "warranty", "privacy"]


def content(request) -> str:
    return request.messages[-1].content


def sides(request, names=("left", "right")) -> tuple[str, str]:
    m = re.search(rf"{names[0]}:\n(.*?)\n\n{names[1]}:\n(.*)$", content(request), re.S)
    assert m, content(request)
    return m.group(1), m.group(2)


def yes_no(match: bool) -> str:
    return json.dumps({"match": "yes" if match else "no"})


def topic_of(text: str) -> str:
    return next(t for t in TOPICS if t in text)


def same_topic(request) -> str:
    a, b = sides(request)
    return yes_no(topic_of(a) == topic_of(b))


@pytest.fixture
def tickets():
    left = pd.DataFrame(
        {"ticket": [f"customer {i} writes about {TOPICS[i % len(TOPICS)]} problem" for i in range(36)]},
        index=[f"t{i}" for i in range(36)],
    )
    right = pd.DataFrame({"team": [f"the {t} desk" for t in TOPICS]})
    gold = {(f"t{i}", j) for i in range(36) for j, t in enumerate(TOPICS) if TOPICS[i % len(TOPICS)] == t}
    return left, right, gold


def pairs(df) -> set:
    return set(zip(df["left_row"], df["right_row"], strict=True))


def test_join_blocks_then_the_model_judges_only_the_candidates(tickets, bag_of_words_embeddings):
    left, right, gold = tickets
    model = ScriptedBackend(same_topic, latency_s=LATENCY)
    op = compound.tables.join(left, right, "the desk handles the ticket", model=model, block_k=2)
    run = process_table(op, None)
    report = run.report
    assert report["pairs"] == 36 * 6 and report["candidates"] < report["pairs"]
    assert report["candidates"] <= op.bound
    assert len(model.requests) == report["reached_model"] == report["candidates"]  # no cascade: all judged
    assert report["share_reached_model"] == 1.0
    assert pairs(run.df) <= gold  # the model's verdicts only
    assert set(run.df["judged_by"]) == {"model"}
    assert list(run.df.columns[:2]) == ["ticket", "team"]
    assert run.usage.physical.calls == len(model.requests)


@pytest.fixture
def topic_embeddings(monkeypatch):
    """Embeddings that see topics: a ticket that names one topic is close to its desk (cosine ~0.99) and far
    from the others (~0.08); one that names two sits between both desks (~0.72)."""
    import numpy as np

    def embed(texts, model_path=None):
        rows = [[t.count(topic) for topic in TOPICS] + [0.3, (sum(map(ord, t)) % 100) / 300] for t in texts]
        out = np.array(rows, dtype="float32")
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    monkeypatch.setattr("compound.optimize.students.embedding.embed_texts", embed)


def test_join_cascade_sends_only_uncertain_pairs_to_the_model_with_a_certificate(topic_embeddings):
    tickets = [
        f"customer {i} writes about {TOPICS[i % 6]}" + (f", and mentions {TOPICS[(i + 1) % 6]}" if i % 4 == 0 else "")
        for i in range(240)
    ]
    left = pd.DataFrame({"ticket": tickets})
    right = pd.DataFrame({"team": [f"the {t} desk" for t in TOPICS]})
    gold = {(i, j) for i in range(240) for j in range(6) if i % 6 == j}
    model = ScriptedBackend(same_topic, latency_s=LATENCY)
    op = compound.tables.join(
        left, right, "the desk handles the ticket", model=model, block_k=2, cascade=True, sample=120
    )
    run = process_table(op, None)
    report = run.report
    assert report["sampled"] == 120
    assert report["accept"]["bound"] >= 0.9 and report["accept"]["value"] > 0.9
    assert report["reject"] is not None and report["rejected_by_similarity"] > 0
    assert report["accepted_by_similarity"] > 0
    # the model saw the sample and the pairs between the thresholds: the two-topic tickets
    assert report["reached_model"] < 0.7 * report["candidates"]
    assert len(model.requests) == report["reached_model"]
    found = pairs(run.df)
    assert len(found & gold) / len(found) >= 0.9 and len(found & gold) / len(gold) >= 0.9
    assert set(run.df["judged_by"]) == {"similarity", "model"}


def test_join_cascade_certifies_nothing_on_a_tiny_sample_and_asks_the_model_about_every_pair(
    tickets, bag_of_words_embeddings
):
    left, right, _ = tickets
    model = ScriptedBackend(same_topic, latency_s=LATENCY)
    op = compound.tables.join(left, right, "the desk handles the ticket", model=model, cascade=True, sample=5)
    report = process_table(op, None).report
    assert report["accept"]["value"] is None and report["reject"] is None
    assert report["reached_model"] == report["candidates"] and report["accepted_by_similarity"] == 0


def test_recall_threshold_keeps_the_share_of_positives_it_certifies():
    scores = [i / 100 for i in range(100)]
    t = recall_threshold(scores, target=0.9, delta=0.1)
    kept = sum(s >= t for s in scores) / len(scores)
    assert 0.9 <= kept < 1.0
    assert recall_threshold(scores[:10], target=0.9, delta=0.1) == -math.inf  # too few for the guarantee


def test_join_stopped_by_a_budget_resumes_without_asking_a_pair_twice(tickets, bag_of_words_embeddings):
    left, right, _ = tickets
    model = ScriptedBackend(same_topic, latency_s=LATENCY)
    make = lambda: compound.tables.join(  # noqa: E731
        left, right, "the desk handles the ticket", model=model, cascade=True, sample=20
    )
    with compound.budget(calls=25), pytest.raises(JobStopped):
        process_table(make(), None, job_id="join-job")
    first = len(model.requests)
    assert 20 <= first <= 25 + compound.get_settings().max_concurrency
    run = process_table(make(), None, job_id="join-job")
    assert run.from_checkpoint == first
    asked = [content(r) for r in model.requests]
    assert len(asked) == len(set(asked))  # no pair asked twice
    assert len(asked) == run.report["reached_model"]


def score_of(text: str) -> int:
    return int(re.search(r"score: (\d+)", text).group(1))


def higher_score(request):
    a, b = sides(request, ("A", "B"))
    return json.dumps({"better": "A" if score_of(a) > score_of(b) else "B"})


def test_top_k_finds_the_best_rows_within_its_stated_bound(bag_of_words_embeddings):
    df = pd.DataFrame({"name": [f"item {i}" for i in range(37)], "score": [(i * 17) % 37 for i in range(37)]})
    model = ScriptedBackend(higher_score, latency_s=LATENCY)
    op = compound.tables.top_k(df, "the highest score", 5, model=model)
    assert op.bound == 2 * (36 + 4 * 6)  # both orders of n - 1 + (k - 1) * ceil(log2 n) comparisons
    run = process_table(op, None)
    assert run.df["score"].tolist() == [36, 35, 34, 33, 32] and run.df["rank"].tolist() == [1, 2, 3, 4, 5]
    assert len(model.requests) == run.report["calls"] == 2 * run.report["comparisons"] <= op.bound
    assert run.report["ties"] == 0  # a consistent model decides every comparison itself
    assert len(model.requests) < 37 * 36 / 2


def test_top_k_asks_each_comparison_in_both_orders():
    df = pd.DataFrame({"score": list(range(16))})
    model = ScriptedBackend(higher_score, latency_s=LATENCY)
    process_table(compound.tables.top_k(df, "the highest score", 1, model=model), None)
    shown = [tuple(score_of(t) for t in sides(r, ("A", "B"))) for r in model.requests]
    assert len(shown) == 2 * 15 and sorted(shown) == sorted((b, a) for a, b in shown)


@pytest.fixture
def score_embeddings(monkeypatch):
    """Embeddings whose similarity to the instruction grows with a row's ``hint`` (not its score)."""
    import numpy as np

    def embed(texts, model_path=None):
        hints = [re.search(r"hint: (\d+)", t) for t in texts]
        out = np.array([[float(h.group(1)), 20.0] if h else [1.0, 0.0] for h in hints])  # instruction: [1, 0]
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    monkeypatch.setattr("compound.optimize.students.embedding.embed_texts", embed)


def always(letter):
    return lambda request: json.dumps({"better": letter})


@pytest.mark.parametrize("letter", ["A", "B"])
def test_a_position_biased_model_does_not_decide_the_top_k(score_embeddings, letter):
    """A model that answers the same letter whatever it is shown ties every comparison; the ties go to the
    embedding similarity to the instruction, so the ranking is the same in any table order."""
    scores = [(i * 7) % 20 for i in range(20)]
    df = pd.DataFrame({"score": scores, "hint": [20 - s for s in scores]})  # similarity ranks low scores first
    tops = []
    for seed in (0, 1):
        model = ScriptedBackend(always(letter), latency_s=LATENCY)
        op = compound.tables.top_k(df.sample(frac=1, random_state=seed), "the highest score", 3, model=model)
        run = process_table(op, None)
        assert run.report["ties"] == run.report["comparisons"] and len(model.requests) <= op.bound
        tops.append(run.df["score"].tolist())
    assert tops[0] == tops[1] == [0, 1, 2]


def test_top_k_follows_the_model_where_it_is_consistent_and_the_embeddings_elsewhere(score_embeddings):
    """Right in both orders when two scores differ by 5 or more, biased to A otherwise."""

    def half_sure(request):
        a, b = (score_of(t) for t in sides(request, ("A", "B")))
        return json.dumps({"better": "B" if b - a >= 5 else "A"})

    scores = [(i * 7) % 20 for i in range(20)]
    df = pd.DataFrame({"score": scores, "hint": scores})  # the similarity agrees with the score
    model = ScriptedBackend(half_sure, latency_s=LATENCY)
    run = process_table(compound.tables.top_k(df, "the highest score", 3, model=model), None)
    assert run.df["score"].tolist() == [19, 18, 17]
    assert 0 < run.report["ties"] < run.report["comparisons"]


def ids_in(text: str) -> set[int]:
    return {int(x) for x in re.findall(r"\bid (\d+)", text)}


def list_ids(request):
    """A summariser that keeps every id it was shown: the final answer names every row that reached it."""
    return "ids: " + " ".join(f"id {i}" for i in sorted(ids_in(content(request))))


def test_aggregate_folds_groups_larger_than_the_context_and_counts_every_row():
    df = pd.DataFrame(
        {
            "team": ["a"] * 60 + ["b"] * 3,
            "note": [f"id {i} the customer reports a slow page and asks for help" for i in range(63)],
        }
    )
    model = ScriptedBackend(list_ids, latency_s=LATENCY)
    op = compound.tables.aggregate(df, "list the ids", by="team", model=model, context_tokens=800, max_tokens=128)
    run = process_table(op, None)
    out = run.df.set_index("team")
    assert ids_in(out.loc["a", "summary"]) == set(range(60))  # nothing dropped
    assert ids_in(out.loc["b", "summary"]) == {60, 61, 62}
    assert out["rows"].tolist() == [60, 3] and out["folded"].tolist() == [60, 0] and out["dropped"].tolist() == [0, 0]
    assert run.report["levels"] >= 2 and len(model.requests) <= op.bound
    assert all(len(content(r)) // 3 + 1 <= op.room + 16 for r in model.requests)  # every prompt fits


def test_aggregate_cuts_a_row_longer_than_the_context_into_pieces_rather_than_truncating():
    long = "id 1 " + "word " * 900 + "the end id 2"
    df = pd.DataFrame({"note": [long]})
    model = ScriptedBackend(list_ids, latency_s=LATENCY)
    run = process_table(compound.tables.aggregate(df, "list", model=model, context_tokens=800, max_tokens=64), None)
    assert ids_in(run.df.loc[0, "summary"]) == {1, 2}  # its end reached the answer
    assert run.df.loc[0, "rows"] == 1 and run.df.loc[0, "folded"] == 1


def test_aggregate_reports_rows_of_a_part_whose_summary_failed_as_dropped():
    df = pd.DataFrame({"note": [f"id {i} " + "text " * 40 for i in range(20)]})

    def flaky(request):  # the model refuses the first part as too long for its context
        if "id 0 " in content(request) and "part 1" in content(request):
            raise ContextLengthError("the prompt is longer than the context")
        return list_ids(request)

    model = ScriptedBackend(flaky, latency_s=LATENCY)
    run = process_table(compound.tables.aggregate(df, "list", model=model, context_tokens=800, max_tokens=64), None)
    assert run.df.loc[0, "dropped"] > 0 and run.failed
    assert run.df.loc[0, "dropped"] + len(ids_in(run.df.loc[0, "summary"])) == 20


def test_describe_by_sends_every_row_of_a_group_not_the_first_twenty():
    df = pd.DataFrame({"team": ["x"] * 45, "note": [f"id {i} fine" for i in range(45)]})
    model = ScriptedBackend(list_ids, latency_s=LATENCY)
    run = process_table(compound.tables.describe(df, by="team", model=model), None)
    assert ids_in(run.df.loc[0, "description"]) == set(range(45))
    assert run.df.loc[0, "rows"] == 45


NAMES = ["Acme Corp", "ACME corporation", "Globex", "Initech", "Initech Inc", "Umbrella", "Hooli", "Acme Corp."]


def canonical(text: str) -> str:
    return re.sub(r"\b(corp|corporation|inc)\b|[^a-z ]", "", text.lower()).split()[0]


def same_company(request):
    a, b = sides(request, ("first", "second"))
    return yes_no(canonical(a.split(": ", 1)[1]) == canonical(b.split(": ", 1)[1]))


def test_dedup_confirms_blocked_candidates_and_groups_duplicates(bag_of_words_embeddings):
    df = pd.DataFrame({"company": NAMES, "city": ["x"] * len(NAMES)})
    model = ScriptedBackend(same_company, latency_s=LATENCY)
    op = compound.tables.dedup(df, ["company"], model=model, block_k=3)
    run = process_table(op, None)
    assert len(model.requests) == run.report["candidates"] <= op.bound < len(df) * (len(df) - 1) // 2 + 1
    dup = run.df["duplicate_of"].tolist()
    assert dup[4] == 3  # Initech Inc -> Initech
    assert dup[7] == 0  # Acme Corp. -> Acme Corp
    assert dup[0] is None and dup[2] is None and dup[3] is None  # first rows, and a row with no duplicate
    kept = process_table(compound.tables.dedup(df, ["company"], model=model, block_k=3, drop=True), None).df
    assert len(kept) == run.report["groups"] and "duplicate_of" not in kept.columns


def test_accessor_runs_the_new_operators(tickets, bag_of_words_embeddings):
    import compound.tables.accessor  # noqa: F401  (imports every operator's module)

    # the operators' modules live in tables.multirow: importing one never hides the function of its name
    assert all(callable(getattr(compound.tables, name)) for name in ("join", "top_k", "aggregate", "dedup"))

    left, right, gold = tickets
    model = ScriptedBackend(same_topic, latency_s=LATENCY)
    joined = left.compound.join(right, "the desk handles the ticket", model=model, block_k=6)
    assert pairs(joined) == gold  # block_k = the right table's size: every pair is a candidate
    df = pd.DataFrame({"score": [3, 9, 1]})
    top = df.compound.top_k("the highest score", 1, model=ScriptedBackend(higher_score))
    assert top["score"].tolist() == [9]


def test_a_file_join_job_stopped_by_a_budget_resumes_from_its_options_and_writes_the_joined_table(
    tmp_path, tickets, bag_of_words_embeddings
):
    from compound.cli.table_job import run_file_job
    from compound.tables.io import read_table

    left, right, _ = tickets
    left.to_csv(tmp_path / "tickets.csv", index=False)
    right.to_csv(tmp_path / "teams.csv", index=False)
    model = compound.register_model("topics-join", ScriptedBackend(same_topic, model="topics-join", latency_s=LATENCY))
    spec = {
        "op": "join",
        "input": str(tmp_path / "tickets.csv"),
        "right": str(tmp_path / "teams.csv"),
        "condition": "the desk handles the ticket",
        "out": str(tmp_path / "joined.csv"),
        "model": "topics-join",
        "block_k": 2,
        "job_id": "file-join",
    }
    with pytest.raises(JobStopped, match="compound table --resume file-join"):
        run_file_job(spec, limits={"calls": 10}, progress=False)
    asked = len(model.requests)
    result, path = run_file_job(None, resume="file-join", progress=False)
    assert result.from_checkpoint == asked and len(model.requests) == result.report["candidates"]
    joined = read_table(path)
    assert list(joined.columns[:2]) == ["ticket", "team"] and len(joined) == result.report["matches"]
    assert all(topic_of(t) == topic_of(d) for t, d in zip(joined["ticket"], joined["team"], strict=True))


def test_file_jobs_for_top_k_aggregate_and_dedup_name_the_options_they_need(tmp_path):
    from compound.cli.table_job import build_op

    df = pd.DataFrame({"text": ["a", "b"]})
    for op, flags in [("top_k", "--instruction, --k"), ("aggregate", "--instruction"), ("dedup", "--columns")]:
        with pytest.raises(compound.ConfigurationError, match=f"compound table {op} needs {flags}"):
            build_op({"op": op}, df)
    with pytest.raises(compound.ConfigurationError, match="add --cascade"):
        build_op({"op": "join", "right": "x.csv", "condition": "c", "recall": 0.9}, df)
