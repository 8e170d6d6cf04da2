"""Bad and edge inputs to the operators over several rows (join, top_k, aggregate, dedup): a clear error
naming the problem and the fix before any call, or a correct answer for the edge case; never a half-done
or silently shortened result."""

import json

import pandas as pd
import pytest

import compound
from compound import ScriptedBackend
from compound.tables.io import TableError
from compound.tables.jobs import process_table

ROWS = pd.DataFrame({"text": ["red apple", "green pear", "yellow banana"]})


def never_called(request):
    raise AssertionError("no model call was expected")


@pytest.mark.parametrize("empty", ["left", "right", "both"])
def test_a_join_on_an_empty_table_is_refused_before_any_call(empty, bag_of_words_embeddings):
    none = ROWS.iloc[:0]
    left = none if empty in ("left", "both") else ROWS
    right = none if empty in ("right", "both") else ROWS
    with pytest.raises(TableError, match=r"the (left|right) table has no rows; give two tables"):
        compound.tables.join(left, right, "same fruit", model=ScriptedBackend(never_called))


def test_a_join_names_a_missing_column_and_the_columns_there_are():
    with pytest.raises(TableError, match=r"right table has no column 'name'; it has text"):
        compound.tables.join(ROWS, ROWS, "same fruit", right_columns=["name"])


@pytest.mark.parametrize(("field", "value"), [("recall", 1.0), ("precision", 0.0), ("delta", 1.5)])
def test_a_join_refuses_a_target_outside_zero_one(field, value):
    with pytest.raises(TableError, match=rf"{field} must be between 0 and 1"):
        compound.tables.join(ROWS, ROWS, "same fruit", cascade=True, **{field: value})


def test_a_join_with_one_row_a_side_judges_the_one_pair(bag_of_words_embeddings):
    model = ScriptedBackend([json.dumps({"match": "yes"})])
    run = process_table(compound.tables.join(ROWS.iloc[:1], ROWS.iloc[1:2], "same fruit", model=model), None)
    assert len(model.requests) == 1 and len(run.df) == 1 and run.report["candidates"] == 1


@pytest.mark.parametrize(
    ("k", "message"), [(4, r"k=4 is larger than the table \(3 rows\); ask for at most 3"), (0, "at least 1")]
)
def test_top_k_refuses_k_larger_than_the_table_or_below_one(k, message):
    with pytest.raises(TableError, match=message):
        compound.tables.top_k(ROWS, "the sweetest fruit", k, model=ScriptedBackend(never_called))


def test_top_k_on_an_empty_table_and_without_an_instruction_is_refused():
    with pytest.raises(TableError, match="no rows"):
        compound.tables.top_k(ROWS.iloc[:0], "the sweetest", 1)
    with pytest.raises(TableError, match="needs an instruction"):
        compound.tables.top_k(ROWS, "  ", 1)


def test_top_k_of_a_one_row_table_returns_it_without_a_call():
    run = process_table(
        compound.tables.top_k(ROWS.iloc[:1], "the sweetest", 1, model=ScriptedBackend(never_called)), None
    )
    assert run.df["text"].tolist() == ["red apple"] and run.report == {
        "bound": 0,
        "comparisons": 0,
        "calls": 0,
        "ties": 0,
    }


def test_top_k_counts_a_reply_that_never_parsed_and_still_ranks_every_place():
    df = pd.DataFrame({"score": [1, 2, 3, 4]})
    run = process_table(compound.tables.top_k(df, "the highest", 2, model=ScriptedBackend(["no idea"])), None)
    assert len(run.df) == 2 and run.failed  # every comparison failed: listed, not hidden


def test_a_group_of_one_row_is_answered_from_that_row_with_nothing_folded():
    df = pd.DataFrame({"team": ["a", "b", "b"], "note": ["only row", "first", "second"]})
    model = ScriptedBackend(lambda r: " ".join(x for x in r.messages[-1].content.splitlines() if x.startswith("note:")))
    run = process_table(compound.tables.aggregate(df, "summarise", by="team", model=model), None)
    one = run.df.set_index("team").loc["a"]
    assert one["rows"] == 1 and one["folded"] == 0 and one["dropped"] == 0 and "only row" in one["summary"]
    assert len(model.requests) == 2  # one call per group


def test_aggregate_refuses_an_empty_table_an_unknown_group_column_and_a_context_too_small_to_fold():
    with pytest.raises(TableError, match="no rows"):
        compound.tables.aggregate(ROWS.iloc[:0], "summarise")
    with pytest.raises(TableError, match="'colour'"):
        compound.tables.aggregate(ROWS, "summarise", by="colour")
    with pytest.raises(
        TableError, match=r"context of 400 tokens .* give a larger context_tokens or a smaller max_tokens"
    ):
        compound.tables.aggregate(ROWS, "summarise", context_tokens=400, max_tokens=256)


def test_dedup_refuses_no_columns_an_unknown_column_and_a_clash_with_its_output_column():
    with pytest.raises(TableError, match="needs the columns"):
        compound.tables.dedup(ROWS, [])
    with pytest.raises(TableError, match="'name'"):
        compound.tables.dedup(ROWS, ["name"])
    with pytest.raises(TableError, match="already has a column 'text'"):
        compound.tables.dedup(ROWS, ["text"], column="text")


def test_dedup_of_one_row_makes_no_call(bag_of_words_embeddings):
    run = process_table(compound.tables.dedup(ROWS.iloc[:1], ["text"], model=ScriptedBackend(never_called)), None)
    assert run.df["duplicate_of"].tolist() == [None] and run.report["candidates"] == 0


def test_a_resume_with_another_model_is_refused_for_a_staged_job(bag_of_words_embeddings):
    df = pd.DataFrame({"score": [1, 2, 3, 4]})
    answer = ScriptedBackend([json.dumps({"better": "A"})], model="scripted-a")
    process_table(compound.tables.top_k(df, "highest", 2, model=answer), None, job_id="rank-job")
    other = ScriptedBackend([json.dumps({"better": "A"})], model="scripted-b")
    with pytest.raises(compound.ConfigurationError, match="another program"):
        process_table(compound.tables.top_k(df, "highest", 2, model=other), None, job_id="rank-job")


def write_csv(path, frame):
    frame.to_csv(path, index=False)
    return path


def test_cli_top_k_writes_the_ranked_rows_and_states_its_bound(relio_cli, tmp_path):
    src = write_csv(tmp_path / "items.csv", pd.DataFrame({"name": [f"item {i}" for i in range(9)]}))
    done = relio_cli(
        "table",
        "top_k",
        src,
        "--instruction",
        "the best item",
        "--k",
        "3",
        "-m",
        "relio-fake",
        "--out",
        tmp_path / "top.csv",
    )
    assert done.returncode == 0, done.stderr
    top = pd.read_csv(tmp_path / "top.csv")
    assert top["rank"].tolist() == [1, 2, 3] and top["name"].is_unique
    assert "top_k: " in done.stdout and "(bound 32)" in done.stdout  # both orders of 8 + 2 * 4 comparisons


def test_cli_refuses_k_larger_than_the_table_before_any_call(relio_cli, tmp_path):
    src = write_csv(tmp_path / "items.csv", ROWS)
    done = relio_cli(
        "table",
        "top_k",
        src,
        "--instruction",
        "the best",
        "--k",
        "9",
        "-m",
        "relio-fake",
        env={"RELIO_FAKE_LOG": str(tmp_path / "calls")},
    )
    assert done.returncode != 0 and "k=9 is larger than the table (3 rows); ask for at most 3" in done.stderr
    assert not (tmp_path / "calls").exists()


def test_cli_join_names_the_options_it_needs(relio_cli, tmp_path):
    src = write_csv(tmp_path / "left.csv", ROWS)
    done = relio_cli("table", "join", src, "--condition", "same fruit")
    assert done.returncode != 0 and "compound table join needs --right" in done.stderr
    done = relio_cli("table", "join", src, "--right", src, "--condition", "same", "--recall", "0.9")
    assert done.returncode != 0 and "add --cascade" in done.stderr


def test_cli_aggregate_folds_a_group_larger_than_the_context_and_says_so(relio_cli, tmp_path):
    notes = pd.DataFrame({"team": ["a"] * 40 + ["b"], "note": [f"note {i} " + "words " * 20 for i in range(41)]})
    src = write_csv(tmp_path / "notes.csv", notes)
    out = tmp_path / "summary.csv"
    done = relio_cli(
        "table",
        "aggregate",
        src,
        "--instruction",
        "summarise",
        "--by",
        "team",
        "--context-tokens",
        "1500",
        "-m",
        "relio-fake",
        "--out",
        out,
    )
    assert done.returncode == 0, done.stderr
    summary = pd.read_csv(out).set_index("team")
    assert summary.loc["a", "rows"] == 40 and summary.loc["a", "folded"] == 40 and summary.loc["a", "dropped"] == 0
    assert summary.loc["b", "rows"] == 1 and summary.loc["b", "folded"] == 0
    assert "40 row(s) folded into summaries, 0 dropped" in done.stdout
