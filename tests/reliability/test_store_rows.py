"""Store files that are valid SQLite but hold a damaged row (a JSON value cut short, not JSON, the wrong
shape), as an attacker or a disk that lost a write would leave them.

A record store (traces, table jobs) refuses such a row with a ``StoreError`` naming the file, the table,
the row and the SQL that deletes it, through the library and through ``compound traces``, ``jobs``,
``table`` and ``--resume`` (one ``error:`` line, no traceback). The caches (responses, table rows) skip it:
a warning, the row moved to ``NAME.damaged-rows.jsonl``, and the answer computed again."""

import csv
import json
import sqlite3

import pytest

import compound
from compound.cli.table_job import run_file_job
from compound.core.errors import StoreError
from compound.store.cache import ResponseCache
from compound.store.traces import trace_store
from compound.tables.jobs import JobStopped, job_store

#: what a damaged JSON value may look like
DAMAGE = {
    "cut short": lambda good: good[: len(good) // 2],
    "empty": lambda good: "",
    "not json": lambda good: "<html>oops</html>",
    "a list instead of an object": lambda good: "[1, 2, 3]",
    "a number": lambda good: "42",
    "NUL bytes": lambda good: "\x00" * 8,
}


def corrupt(path, sql, params=()):
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def write_rows(path, n=6):
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([("id", "text"), *[(f"r{i}", f"t{i}") for i in range(n)]])


def spec(tmp_path, job="j"):
    return {
        "op": "map",
        "input": str(tmp_path / "in.csv"),
        "out": str(tmp_path / "out.csv"),
        "column": "out",
        "instruction": "summarise",
        "model": "relio-fake",
        "job_id": job,
    }


def assert_names_the_row(error, path, table):
    text = str(error)
    assert str(path) in text and f"table {table}" in text and "DELETE FROM" in text, text


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_trace_whose_attrs_are_damaged_is_named(isolated_home, damage):
    with compound.start_run("one", note="x") as run:
        pass
    store = trace_store()
    store.writer.flush()
    good = store.read().execute("SELECT attrs FROM spans WHERE id=?", (run.id,)).fetchone()[0]
    corrupt(store.path, "UPDATE spans SET attrs=? WHERE id=?", (damage(good), run.id))
    with pytest.raises(StoreError) as caught:
        store.list(kind="run")
    assert_names_the_row(caught.value, store.path, "spans")
    assert run.id in str(caught.value)


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_cached_response_that_is_damaged_is_skipped_and_moved_aside(relio_fake, isolated_home, damage):
    first = compound.Predict("q -> a", model="relio-fake")(q="hello")
    cache = ResponseCache.at(isolated_home / "cache.sqlite")
    cache.writer.flush()
    good = cache.read().execute("SELECT generation FROM responses").fetchone()[0]
    corrupt(cache.path, "UPDATE responses SET generation=?", (damage(good),))
    calls = len(relio_fake.requests)
    with pytest.warns(RuntimeWarning, match="damaged row"):
        again = compound.Predict("q -> a", model="relio-fake")(q="hello")
    assert again.a == first.a == "R(hello)"
    assert len(relio_fake.requests) == calls + 1, (calls, relio_fake.requests)  # computed again
    aside = cache.path.with_name("cache.sqlite.damaged-rows.jsonl")
    assert aside.exists() and json.loads(aside.read_text().splitlines()[-1])["table"] == "responses"


def test_a_cached_response_of_the_wrong_shape_is_skipped(relio_fake, isolated_home):
    compound.Predict("q -> a", model="relio-fake")(q="hi")
    cache = ResponseCache.at(isolated_home / "cache.sqlite")
    cache.writer.flush()
    corrupt(cache.path, "UPDATE responses SET generation=?", (json.dumps({"unexpected": True}),))
    with pytest.warns(RuntimeWarning, match="damaged row"):
        compound.Predict("q -> a", model="relio-fake")(q="hi")


def test_a_resume_over_a_damaged_result_names_the_row(tmp_path, relio_fake):
    write_rows(tmp_path / "in.csv")
    with pytest.raises(JobStopped), compound.budget(calls=3):
        run_file_job(spec(tmp_path), progress=False)
    store = job_store()
    key = store.read().execute("SELECT row_key FROM results LIMIT 1").fetchone()[0]
    corrupt(store.path, 'UPDATE results SET output=\'{"out": "R(\' WHERE row_key=?', (key,))
    with pytest.raises(StoreError) as caught:
        run_file_job(None, resume="j", progress=False)
    assert_names_the_row(caught.value, store.path, "results")
    assert key in str(caught.value) and not (tmp_path / "out.csv").exists()


def test_a_job_whose_spec_is_damaged_is_named_by_get_and_list(tmp_path, relio_fake):
    write_rows(tmp_path / "in.csv")
    run_file_job(spec(tmp_path), progress=False)
    store = job_store()
    corrupt(store.path, "UPDATE jobs SET spec='{\"op\": \"ma' WHERE id='j'")
    for call in (lambda: store.get("j"), lambda: store.list()):
        with pytest.raises(StoreError) as caught:
            call()
        assert_names_the_row(caught.value, store.path, "jobs")


def test_a_damaged_row_cache_entry_is_recomputed_with_a_warning(tmp_path, relio_fake):
    write_rows(tmp_path / "in.csv")
    run_file_job(spec(tmp_path, job="a"), progress=False)
    store = job_store()
    store.writer.flush()  # the row cache is written in the background: every entry is on disk before the damage
    corrupt(store.path, "UPDATE row_cache SET usage='{\"prompt_tok'")
    with pytest.warns(RuntimeWarning, match="row_cache"):
        result, out = run_file_job({**spec(tmp_path, job="b"), "out": str(tmp_path / "b.csv")}, progress=False)
    assert result.computed == 6 and result.from_cache == 0  # (the response cache may still answer the calls)
    with open(out, newline="") as f:
        assert [r[2] for r in list(csv.reader(f))[1:]] == [f"R(r{i})" for i in range(6)]


ROW_CACHE_DAMAGE = {
    **{f"output {name}": ("output", damage) for name, damage in DAMAGE.items()},
    **{f"usage {name}": ("usage", damage) for name, damage in DAMAGE.items()},
    "usage whose calls are text": ("usage", lambda good: json.dumps({**json.loads(good), "calls": "many"})),
    "usage whose cost is null": ("usage", lambda good: json.dumps({**json.loads(good), "cost_usd": None})),
    "two objects in one usage": ("usage", lambda good: f"{good},{good}"),
}


@pytest.mark.parametrize("column, damage", ROW_CACHE_DAMAGE.values(), ids=ROW_CACHE_DAMAGE.keys())
def test_one_damaged_row_cache_entry_among_good_ones_is_skipped_and_only_it(tmp_path, relio_fake, column, damage):
    """The cached rows of a re-run are decoded together: one bad entry is found, moved aside and computed
    again (its reply from the response cache), and the five good ones are still served from the row cache,
    with their usage counted."""
    write_rows(tmp_path / "in.csv")
    run_file_job(spec(tmp_path, job="a"), progress=False)
    store = job_store()
    store.writer.flush()
    key, good = store.read().execute(f"SELECT key, {column} FROM row_cache ORDER BY key LIMIT 1").fetchone()
    corrupt(store.path, f"UPDATE row_cache SET {column}=? WHERE key=?", (damage(good), key))
    with pytest.warns(RuntimeWarning, match="row_cache"):
        result, out = run_file_job({**spec(tmp_path, job="b"), "out": str(tmp_path / "b.csv")}, progress=False)
    assert (result.computed, result.from_cache) == (1, 5)
    assert result.usage.cached.calls == 6  # five from the row cache, the damaged row's call from the responses
    with open(out, newline="") as f:
        assert [r[2] for r in list(csv.reader(f))[1:]] == [f"R(r{i})" for i in range(6)]
    aside = store.path.with_name("tables.sqlite.damaged-rows.jsonl")
    assert key in aside.read_text()


def test_a_row_cache_entry_with_whitespace_around_its_json_is_served(tmp_path, relio_fake):
    write_rows(tmp_path / "in.csv")
    run_file_job(spec(tmp_path, job="a"), progress=False)
    store = job_store()
    store.writer.flush()
    corrupt(store.path, "UPDATE row_cache SET output=' ' || output || char(10), usage=char(9) || usage || ' '")
    result, _ = run_file_job({**spec(tmp_path, job="b"), "out": str(tmp_path / "b.csv")}, progress=False)
    assert (result.computed, result.from_cache) == (0, 6) and result.usage.cached.calls == 6


def test_a_row_key_with_quotes_is_quoted_in_the_fix(isolated_home):
    store = job_store()
    error = store.bad_row("jobs", {"id": "it's"}, "spec", "cut short")
    assert "id='it''s'" in str(error)


# ---- through the console script: one error line naming the file, no traceback ----


def damaged_job_home(relio_cli, tmp_path, column="spec"):
    write_rows(tmp_path / "in.csv")
    proc = relio_cli(
        "table",
        "map",
        "in.csv",
        "--column",
        "out",
        "--instruction",
        "s",
        "--model",
        "relio-fake",
        "--job",
        "j",
        "--out",
        "out.csv",
    )
    assert proc.returncode == 0, proc.stderr
    path = relio_cli.home / "tables.sqlite"
    if column == "spec":
        corrupt(path, "UPDATE jobs SET spec=substr(spec, 1, 10)")
    else:
        corrupt(path, "UPDATE results SET output=substr(output, 1, 5)")
    return path


def test_cli_jobs_names_the_damaged_row(relio_cli, relio_clean_error, tmp_path):
    path = damaged_job_home(relio_cli, tmp_path)
    relio_clean_error(relio_cli("jobs"), str(path), "table jobs")


def test_cli_resume_names_the_damaged_result(relio_cli, relio_clean_error, tmp_path):
    path = damaged_job_home(relio_cli, tmp_path, column="output")
    corrupt(path, "UPDATE jobs SET status='stopped'")
    relio_clean_error(relio_cli("table", "--resume", "j"), str(path), "table results")


def test_cli_traces_names_the_damaged_span(relio_cli, relio_clean_error, tmp_path):
    proc = relio_cli("ask", "hello", "--model", "relio-fake")
    assert proc.returncode == 0, proc.stderr
    path = relio_cli.home / "traces.sqlite"
    corrupt(path, "UPDATE spans SET attrs=substr(attrs, 1, 3)")
    relio_clean_error(relio_cli("traces", "list"), str(path), "table spans")


def test_cli_ask_over_a_damaged_cache_row_answers_and_warns(relio_cli, tmp_path):
    assert relio_cli("ask", "hello", "--model", "relio-fake").returncode == 0
    corrupt(relio_cli.home / "cache.sqlite", 'UPDATE responses SET generation=\'{"text": "R(\'')
    proc = relio_cli("ask", "hello", "--model", "relio-fake")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "damaged row" in proc.stderr and "R(" in proc.stdout
