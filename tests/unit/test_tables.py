import json
import re

import pandas as pd
import pytest

import compound
from compound import ScriptedBackend
from compound.cli.table_job import run_file_job
from compound.tables import operators as ops
from compound.tables.io import TableError, check_column_types, read_table, write_table
from compound.tables.jobs import JobStopped, job_store, process_table


def field(request, name):
    m = re.search(rf"\b{name}: (.*)$", request.messages[-1].content, re.M)
    return m.group(1) if m else None


def sentiment(request):
    return json.dumps({"sentiment": "positive" if "good" in field(request, "review") else "negative"})


REVIEWS = pd.DataFrame({"id": [1, 2, 3, 4], "review": ["good food", "bad service", "good food", "cold and bad"]})


def test_classify_keeps_columns_and_computes_identical_rows_once():
    model = ScriptedBackend(sentiment)
    op = ops.classify(REVIEWS, "sentiment", ["positive", "negative"], input_columns=["review"], model=model)
    out = process_table(op, REVIEWS).df
    assert list(out.columns) == ["id", "review", "sentiment"]
    assert out["sentiment"].tolist() == ["positive", "negative", "positive", "negative"]
    assert len(model.requests) == 3  # "good food" twice: one call


def test_cached_rerun_costs_nothing():
    model = ScriptedBackend(sentiment)
    op = ops.classify(REVIEWS, "sentiment", ["positive", "negative"], input_columns=["review"], model=model)
    first = process_table(op, REVIEWS)
    second = process_table(op, REVIEWS)
    assert second.df.equals(first.df)
    assert len(model.requests) == 3 and second.computed == 0 and second.from_cache == 4
    assert second.usage.physical.calls == 0 and second.usage.cached.calls == 3  # one per distinct input


def test_a_row_computed_from_cached_replies_still_counts_what_they_cost_when_served_from_the_row_cache():
    """A row whose calls were all reply-cache hits stands for those calls: served later from the row
    cache, it counts their cost, not nothing (benchmarks re-run over cached rows reported 0 per row)."""
    model = ScriptedBackend(sentiment, latency_s=0.01)
    op = ops.classify(REVIEWS, "sentiment", ["positive", "negative"], input_columns=["review"], model=model)
    first = process_table(op, REVIEWS)  # computed: 3 calls
    store = job_store()
    store.writer.flush()
    with store.connect() as db:  # the rows are forgotten, the replies are still cached
        db.execute("DELETE FROM row_cache")
    second = process_table(op, REVIEWS)  # computed again, every call a reply-cache hit
    third = process_table(op, REVIEWS)  # served from the row cache
    assert len(model.requests) == 3 and second.computed == 3 and third.from_cache == 4
    assert second.usage.physical.calls == 0 and second.usage.cached.calls == 3
    assert third.usage.cached.calls == 3 and third.usage.total.total_tokens == first.usage.total.total_tokens > 0


def test_a_cached_rerun_counts_exactly_the_usage_the_first_run_recorded():
    """The row cache's usages are added up together (``Usage.sum_dicts``): the same sum, to the last bit of
    every float, as adding each row's ``Usage`` in turn."""
    model = ScriptedBackend(sentiment, latency_s=0.002)
    op = ops.classify(REVIEWS, "sentiment", ["positive", "negative"], input_columns=["review"], model=model)
    process_table(op, REVIEWS)
    store = job_store()
    store.writer.flush()
    rows = [json.loads(u) for (u,) in store.read().execute("SELECT usage FROM row_cache")]
    one_by_one = compound.Usage()
    for row in rows:
        one_by_one.add(compound.Usage.from_dict(row))
    assert compound.Usage.sum_dicts(rows) == one_by_one and one_by_one.wall_s > 0 and one_by_one.energy_estimated
    again = process_table(op, REVIEWS)
    cached = again.usage.cached  # (its rows may come in another order: the float sums to rounding)
    assert again.from_cache == 4 and cached.to_dict() == pytest.approx(one_by_one.to_dict(), rel=1e-12)
    with pytest.raises(TypeError):
        compound.Usage.sum_dicts([*rows, {"calls": "two"}])
    assert compound.Usage.sum_dicts([]) == compound.Usage()


def test_impute_fills_only_missing_cells_with_examples():
    df = pd.DataFrame({"mass": [3000, 5000, 3100, 5200, 4900], "sex": ["female", "male", None, "male", None]})

    def guess(request):
        assert any("sex" in m.content for m in request.messages[:-1])  # complete rows shown as examples
        return json.dumps({"sex": "male" if float(field(request, "mass")) > 4000 else "female"})

    model = ScriptedBackend(guess)
    out = process_table(ops.impute(df, "sex", model=model), df).df
    assert out["sex"].tolist() == ["female", "male", "female", "male", "male"]
    assert len(model.requests) == 2
    schema = model.requests[0].json_schema
    assert set(schema["properties"]["sex"]["enum"]) == {"female", "male"}


def test_extract_filter_map_describe():
    df = pd.DataFrame({"text": ["Ann is 31", "Bob is 40"], "team": ["a", "b"]})
    model = ScriptedBackend(
        lambda r: json.dumps({"name": field(r, "text").split()[0], "age": int(field(r, "text").split()[-1])})
    )
    out = process_table(ops.extract(df, "text", {"name": str, "age": int}, model=model), df).df
    assert out[["name", "age"]].values.tolist() == [["Ann", 31], ["Bob", 40]]
    keep = ScriptedBackend(lambda r: json.dumps({"keep": "Bob" in field(r, "text")}))
    assert process_table(ops.filter(df, "is Bob", model=keep), df).df["text"].tolist() == ["Bob is 40"]
    # a str column is asked for as plain text: no schema goes out, the stripped reply is the value
    shout = ScriptedBackend(lambda r: f"  {field(r, 'text').upper()}\n")
    assert process_table(ops.map(df, "loud", "shout it", input_columns=["text"], model=shout), df).df[
        "loud"
    ].tolist() == ["ANN IS 31", "BOB IS 40"]
    assert all(r.json_schema is None for r in shout.requests)
    assert "plain text" in shout.requests[0].messages[0].content
    # any other type still goes as JSON under its schema
    count = ScriptedBackend(lambda r: json.dumps({"n": len(field(r, "text"))}))
    out = process_table(ops.map(df, "n", "count", type_=int, input_columns=["text"], model=count), df).df
    assert out["n"].tolist() == [9, 9] and count.requests[0].json_schema["properties"]["n"]["type"] == "integer"
    groups = ScriptedBackend(lambda r: r.messages[-1].content.splitlines()[1])  # per group: plain text
    described = process_table(ops.describe(df, "summary", by="team", model=groups), df).df
    assert described.to_dict("list") == {
        "team": ["a", "b"],
        "summary": ["team = a", "team = b"],
        "rows": [1, 1],
        "folded": [0, 0],
        "dropped": [0, 0],
    }


def test_budget_stop_then_resume_finishes_with_no_row_done_twice(tmp_path):
    df = pd.DataFrame({"review": [f"good {i}" if i % 2 else f"bad {i}" for i in range(12)]})
    model = ScriptedBackend(sentiment)
    op = ops.classify(df, "sentiment", ["positive", "negative"], model=model)
    with compound.budget(calls=5), pytest.raises(JobStopped) as info:
        process_table(op, df, job_id="j1", concurrency=1)
    assert "--resume j1" in str(info.value) and info.value.done == 5
    assert len(job_store().done("j1")) == 5
    out = process_table(op, df, job_id="j1").df
    assert len(model.requests) == 12  # the 5 finished rows were not asked again
    assert out["sentiment"].tolist() == ["negative" if i % 2 == 0 else "positive" for i in range(12)]
    assert job_store().get("j1")["status"] == "done"


def test_resume_with_another_program_is_refused():
    model = ScriptedBackend(sentiment)
    process_table(ops.classify(REVIEWS, "sentiment", ["positive", "negative"], model=model), REVIEWS, job_id="j2")
    other = ops.classify(REVIEWS, "sentiment", ["positive", "negative", "mixed"], model=model)
    with pytest.raises(compound.CompoundError, match="another program"):
        process_table(other, REVIEWS, job_id="j2")


def test_files_round_trip_in_every_format(tmp_path):
    df = pd.DataFrame({"b": [1, 2], "a": ["x", "y"]})
    for ext in ("csv", "xlsx", "parquet"):
        path = write_table(df, tmp_path / f"t.{ext}")
        back = read_table(path)
        expected = [["1", "x"], ["2", "y"]] if ext == "csv" else df.values.tolist()  # CSV cells are read as text
        assert list(back.columns) == ["b", "a"] and back.values.tolist() == expected
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_bad_files_name_the_file_row_or_column(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        read_table(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TableError, match="empty.csv: the file is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(TableError, match="no rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "bad.xlsx").write_text("this is not a spreadsheet")
    with pytest.raises(TableError, match="bad.xlsx: cannot read it as excel"):
        read_table(tmp_path / "bad.xlsx")
    with pytest.raises(TableError, match="unknown table format"):
        read_table(tmp_path / "data.json")
    mixed = pd.DataFrame({"mass": [3000, 4000, "heavy", 3500]})
    with pytest.raises(TableError, match=r"column 'mass' mixes numbers and text \(row 4 holds 'heavy'\)"):
        check_column_types(mixed, "mass")
    with pytest.raises(TableError, match="no column 'sexx'; the columns are: mass"):
        ops.impute(mixed.iloc[:2], "sexx")


def test_file_job_with_a_named_model(tmp_path):
    compound.register_model("sentiment-fake", ScriptedBackend(sentiment))
    REVIEWS.to_csv(tmp_path / "in.csv", index=False)
    spec = {
        "op": "classify",
        "input": str(tmp_path / "in.csv"),
        "out": str(tmp_path / "out.xlsx"),
        "column": "sentiment",
        "labels": ["positive", "negative"],
        "model": "sentiment-fake",
        "job_id": "file-job",
        "input_columns": ["review"],
    }
    result, path = run_file_job(spec, progress=False)
    assert read_table(path)["sentiment"].tolist() == ["positive", "negative", "positive", "negative"]
    with pytest.raises(compound.ConfigurationError, match="exists already"):
        run_file_job(spec, progress=False)
    again, _ = run_file_job(None, resume="file-job", progress=False)
    assert again.from_checkpoint == 4 and again.computed == 0


def test_cli_table_budget_stop_names_the_resume_command_and_jobs_lists_it(tmp_path):
    from typer.testing import CliRunner

    from compound.cli import app

    compound.register_model("sentiment-cli", ScriptedBackend(sentiment, model="sentiment-cli"))
    pd.DataFrame({"review": [f"good {i}" for i in range(6)]}).to_csv(tmp_path / "in.csv", index=False)
    args = [
        "table",
        "classify",
        str(tmp_path / "in.csv"),
        "--column",
        "sentiment",
        "--labels",
        "positive,negative",
        "--model",
        "sentiment-cli",
        "--job",
        "cli-job",
        "--max-calls",
        "2",
        "--no-progress",
        "--out",
        str(tmp_path / "o.csv"),
    ]
    stopped = CliRunner().invoke(app, args)
    assert isinstance(stopped.exception, JobStopped) and "compound table --resume cli-job" in str(stopped.exception)
    assert not (tmp_path / "o.csv").exists()
    listed = CliRunner().invoke(app, ["jobs"])
    assert "cli-job" in listed.output and "stopped" in listed.output and "2/6" in listed.output
    done = CliRunner().invoke(app, ["table", "--resume", "cli-job", "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "2 from the checkpoint" in done.output
    assert read_table(tmp_path / "o.csv")["sentiment"].tolist() == ["positive"] * 6


def test_a_row_whose_reply_never_parses_is_left_empty_and_the_job_goes_on():
    def flaky(request):
        return "not json" if "bad service" in request.messages[1].content else sentiment(request)

    model = ScriptedBackend(flaky, model="flaky")
    op = ops.classify(REVIEWS, "sentiment", ["positive", "negative"], input_columns=["review"], model=model)
    result = process_table(op, REVIEWS, job_id="flaky-job")
    assert result.df["sentiment"].tolist()[0] == "positive" and pd.isna(result.df["sentiment"].tolist()[1])
    assert list(result.failed) == [1] and "not json" in result.failed[1]
    assert job_store().get("flaky-job")["status"] == "done"
    again = process_table(op, REVIEWS)  # without the job: the failure was not cached, so it is tried again
    assert again.computed == 1 and list(again.failed) == [1]


def test_a_row_too_long_for_the_models_context_is_left_empty_and_the_job_goes_on():
    # a real data file (the SMS collection) holds two rows of 14,000 characters, where a quoting error
    # swallowed hundreds of messages: one such row must not stop a 2,000-row job
    def small_context(request):
        if len(request.messages[1].content) > 2000:
            raise compound.ContextLengthError("llama.cpp: request (4177 tokens) exceeds the available context size")
        return sentiment(request)

    df = pd.concat([REVIEWS, pd.DataFrame({"review": ["great " * 600]})], ignore_index=True)
    model = ScriptedBackend(small_context, model="short-context", latency_s=0.005)
    op = ops.classify(df, "sentiment", ["positive", "negative"], input_columns=["review"], model=model)
    result = process_table(op, df, job_id="long-row-job")
    last = len(df) - 1
    assert list(result.failed) == [last] and "exceeds the available context size" in result.failed[last]
    assert pd.isna(result.df["sentiment"].iloc[last]) and result.df["sentiment"].iloc[:last].notna().all()
    assert job_store().get("long-row-job")["status"] == "done"
