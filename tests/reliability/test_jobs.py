"""Table jobs under hostile conditions: inputs that change between runs, two processes on one job, kills,
failures, budgets below the concurrency, options that change on ``--resume``.

The fake model answers after 30 ms with ``R(<id>)`` for a row whose first column is ``<id>``, so an output
attached to the wrong row shows; jobs run at the default concurrency."""

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import compound
from compound.cli.table_job import run_file_job
from compound.core.errors import ConfigurationError
from compound.tables.joblock import job_lock, job_running
from compound.tables.jobs import JobStopped, job_store


def write_rows(path, rows, header=("id", "text")):
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))[1:]


def spec(tmp_path, job="j", **extra):
    return {
        "op": "map",
        "input": str(tmp_path / "in.csv"),
        "out": str(tmp_path / "out.csv"),
        "column": "out",
        "instruction": "summarise",
        "model": "relio-fake",
        "job_id": job,
        **extra,
    }


ROWS = [(f"r{i:02d}", f"text {i}") for i in range(12)]


def stop_after_three(tmp_path):
    """A job that stopped on its budget with three rows done."""
    write_rows(tmp_path / "in.csv", ROWS)
    with pytest.raises(JobStopped):
        run_file_job(spec(tmp_path), limits={"calls": 3}, progress=False)
    assert len(job_store().done("j")) == 3 and not (tmp_path / "out.csv").exists()


CHANGES = {
    "re-sorted": lambda rows: sorted(rows, reverse=True),
    "shuffled": lambda rows: random.Random(3).sample(rows, len(rows)),
    "edited": lambda rows: [(i, t + " (edited)") if n % 3 == 0 else (i, t) for n, (i, t) in enumerate(rows)],
    "ids-swapped": lambda rows: [(rows[(n + 1) % len(rows)][0], t) for n, (_, t) in enumerate(rows)],
    "row-removed": lambda rows: rows[1:],
    "row-added": lambda rows: [*rows, ("r99", "new")],
    "duplicated": lambda rows: rows + rows[:4],
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_resume_over_a_changed_input_matches_rows_by_content(tmp_path, relio_fake, change):
    stop_after_three(tmp_path)
    changed = CHANGES[change](ROWS)
    write_rows(tmp_path / "in.csv", changed)
    result, out = run_file_job(None, resume="j", progress=False)
    got = read_rows(out)
    assert [r[:2] for r in got] == [list(r) for r in changed]  # the input as it is now, in its order
    assert all(r[2] == f"R({r[0]})" for r in got)  # every output belongs to its own row
    assert result.notes and "the input changed" in result.notes[0]  # and it says so
    assert job_store().get("j")["status"] == "done"


def test_an_unchanged_resume_reuses_every_committed_row(tmp_path, relio_fake):
    stop_after_three(tmp_path)
    before = len(relio_fake.requests)
    result, _ = run_file_job(None, resume="j", progress=False)
    assert result.from_checkpoint == 3 and result.computed == 9 and not result.notes
    assert len(relio_fake.requests) - before == 9  # the three committed rows were not asked again


@pytest.mark.parametrize(
    "given,needle",
    [
        ({"model": "scripted"}, "--model 'scripted'"),
        ({"column": "other"}, "--column 'other'"),
        ({"instruction": "translate"}, "--instruction"),
        ({"input_columns": ["text"]}, "--input-columns"),
        ({"encoding": "latin-1"}, "--encoding"),
    ],
)
def test_options_that_differ_on_resume_are_refused(tmp_path, relio_fake, given, needle):
    stop_after_three(tmp_path)
    with pytest.raises(ConfigurationError, match=f"takes its options from the job.*{needle}"):
        run_file_job(given, resume="j", progress=False)
    assert job_store().get("j")["status"] == "stopped"


def test_options_given_again_with_the_same_value_are_accepted(tmp_path, relio_fake):
    stop_after_three(tmp_path)
    same = {k: v for k, v in spec(tmp_path).items() if k != "job_id"}
    _, out = run_file_job(same, resume="j", progress=False)
    assert len(read_rows(out)) == 12


@pytest.mark.parametrize("job_id", ["../../etc/x", "a/b", " j", "j;rm", "x" * 101, ".hidden", "-rf"])
def test_job_ids_cannot_name_paths(tmp_path, relio_fake, job_id):
    write_rows(tmp_path / "in.csv", ROWS[:2])
    with pytest.raises(ConfigurationError, match="job id .* is not allowed"):
        run_file_job(spec(tmp_path, job=job_id), progress=False)
    assert not relio_fake.requests and not (tmp_path.parent / "x.lock").exists()


def test_the_lock_is_reentrant_in_a_process_and_released_after(tmp_path):
    with job_lock("held"):
        with job_lock("held"):
            assert job_running("held")
        assert job_running("held")
    assert not job_running("held")


def test_a_job_is_done_only_once_its_output_is_written(tmp_path, relio_fake, monkeypatch):
    write_rows(tmp_path / "in.csv", ROWS[:4])
    from compound.tables import textfile

    def broken(df, path, fmt):
        Path(path).write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(textfile, "write_text_table", broken)
    with pytest.raises(OSError, match="disk full"):
        run_file_job(spec(tmp_path), progress=False)
    assert job_store().get("j")["status"] == "computed"  # every row committed, no output yet
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out.csv.tmp-*"))  # no temporary left
    monkeypatch.undo()
    before = len(relio_fake.requests)
    run_file_job(None, resume="j", progress=False)
    assert len(relio_fake.requests) == before and job_store().get("j")["status"] == "done"
    assert [r[2] for r in read_rows(tmp_path / "out.csv")] == ["R(r00)", "R(r01)", "R(r02)", "R(r03)"]


def test_a_failing_row_stops_the_job_keeping_the_rows_in_flight(tmp_path):
    def reply(request):
        time.sleep(0.03)
        if "r05" in request.messages[-1].content:
            raise RuntimeError("backend fell over")
        return '{"out": "ok"}'

    compound.register_model("relio-flaky", compound.ScriptedBackend(reply, model="relio-flaky"))
    write_rows(tmp_path / "in.csv", ROWS)
    with pytest.raises(JobStopped, match="resume with: compound table --resume j") as info:
        run_file_job(spec(tmp_path, model="relio-flaky"), progress=False)
    assert 0 < info.value.done < 12 and len(job_store().done("j")) == info.value.done
    assert job_store().get("j")["status"] == "stopped"


def test_duplicate_rows_are_computed_once_and_all_filled(tmp_path, relio_fake):
    write_rows(tmp_path / "in.csv", ROWS[:3] * 3)
    result, out = run_file_job(spec(tmp_path), progress=False)
    assert result.computed == 3 and len(relio_fake.requests) == 3
    assert [r[2] for r in read_rows(out)] == ["R(r00)", "R(r01)", "R(r02)"] * 3


# ---- through the console script --------------------------------------------------------------------------------


def _table(relio_cli, *args, env=None):
    base = ["table", "map", "in.csv", "-c", "out", "--instruction", "y", "--model", "relio-fake", "--no-progress"]
    return relio_cli(*base, *args, env=env)


def test_a_cap_below_the_concurrency_makes_progress_on_every_resume(relio_cli, relio_clean_error, tmp_path):
    """``--max-calls 3`` with the default concurrency of 8: each run commits its three paid rows; resuming
    goes forward, and the job finishes."""
    write_rows(tmp_path / "in.csv", ROWS)
    first = _table(relio_cli, "--job", "capped", "--max-calls", "3")
    relio_clean_error(first, "stopped after 3/12", code=1)
    done = [3]
    for _ in range(6):
        again = relio_cli("table", "--resume", "capped", "--max-calls", "3", "--no-progress")
        conn = sqlite3.connect(relio_cli.home / "tables.sqlite")
        done.append(conn.execute("SELECT COUNT(*) FROM results WHERE job_id='capped'").fetchone()[0])
        conn.close()
        if again.returncode == 0:
            break
        relio_clean_error(again, "compound table --resume capped", code=1)
    assert done == [3, 6, 9, 12]
    assert [r[2] for r in read_rows(tmp_path / "in.map.csv")] == [f"R({i})" for i, _ in ROWS]


def test_a_changed_input_on_resume_is_reported_on_stderr(relio_cli, relio_clean_error, tmp_path):
    write_rows(tmp_path / "in.csv", ROWS)
    relio_clean_error(_table(relio_cli, "--job", "chg", "--max-calls", "4"), "stopped after 4/12", code=1)
    write_rows(tmp_path / "in.csv", sorted(ROWS, reverse=True)[:10])
    again = relio_cli("table", "--resume", "chg", "--no-progress")
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "warning: the input changed since job chg started" in again.stderr
    assert all(r[2] == f"R({r[0]})" for r in read_rows(tmp_path / "in.map.csv"))


def test_a_second_process_is_refused_while_the_first_holds_the_job(relio_cli, relio_clean_error, tmp_path):
    """The first process is held inside its first model call (so it holds the job's lock) until the test is
    done with it: no assumption on how long its job takes under the machine's load."""
    write_rows(tmp_path / "in.csv", [(f"r{i}", "x") for i in range(160)])
    gate = tmp_path / "hold"
    gate.touch()
    args = ["table", "map", "in.csv", "-c", "out", "--instruction", "y", "--model", "relio-fake", "--no-progress"]
    first = relio_cli.popen(*args, "--job", "busy", env={"RELIO_FAKE_HOLD": str(gate)})
    try:
        _wait_for_file(Path(f"{gate}.entered"), first)
        second = relio_cli("table", "--resume", "busy", "--no-progress")
        relio_clean_error(second, "job busy is being run by another process (pid", code=1)
        third = _table(relio_cli, "--job", "busy")
        relio_clean_error(third, "being run by another process", code=1)
        listed = relio_cli("jobs")
        assert "running" in listed.stdout
        assert first.poll() is None  # the refusals above were made while the first still ran
    finally:
        first.kill()
        first.wait()
    listed = relio_cli("jobs")
    assert "interrupted" in listed.stdout  # killed: no process holds it any more
    finished = relio_cli("table", "--resume", "busy", "--no-progress")  # the kill released the lock
    assert finished.returncode == 0, finished.stderr
    assert len(read_rows(tmp_path / "in.map.csv")) == 160


def _wait_for_file(path, proc, timeout=120):
    """Wait until ``path`` exists (a signal from ``proc``), failing early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError(f"{path.name} did not appear within {timeout} s")


# ---- SIGKILL, with the input changing between the runs ---------------------------------------------------------

FIXTURE = str(Path(__file__).parent.parent / "fixtures" / "table_job.py")


def _parity_job(home, inp, out, job_id, resume):
    env = {**os.environ, "COMPOUND_HOME": str(home)}
    args = [sys.executable, FIXTURE, str(inp), str(out), job_id] + (["--resume"] if resume else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _committed(home, job_id):
    """Rows committed for the job so far, or None before the job exists."""
    if not (home / "tables.sqlite").exists():
        return None
    conn = sqlite3.connect(home / "tables.sqlite")
    try:
        if conn.execute("SELECT 1 FROM jobs WHERE id=?", (job_id,)).fetchone() is None:
            return None
        return conn.execute("SELECT COUNT(*) FROM results WHERE job_id=?", (job_id,)).fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not written yet
        return None
    finally:
        conn.close()


def _parity_rows(ns):
    return [(str(n), f"row {n}") for n in ns]


def test_sigkill_then_resume_over_an_input_that_changes_between_the_runs(tmp_path):
    """Killed three times mid-job; between the runs the input is re-sorted, edited, shrunk and grown. The
    final output equals a clean run over the final input: every row labelled from its own content."""
    home, inp, out = tmp_path / "home", tmp_path / "in.csv", tmp_path / "out.csv"
    ns = list(range(150))
    rng = random.Random(11)
    write_rows(inp, _parity_rows(ns), header=("n", "text"))
    kills = 0
    for step in range(3):
        p = _parity_job(home, inp, out, "kr", resume=_committed(home, "kr") is not None)
        deadline = time.monotonic() + 60
        while not _committed(home, "kr") and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # kill only once the job runs
        time.sleep(rng.uniform(0.1, 0.4))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            kills += 1
        p.wait()
        ns = rng.sample(ns, len(ns))  # re-sorted
        ns = [n + 1000 if rng.random() < 0.1 else n for n in ns]  # some rows edited (their parity may flip)
        ns = ns[5:] + [2000 + step, 3001 + step]  # some removed, some added
        write_rows(inp, _parity_rows(ns), header=("n", "text"))
    p = _parity_job(home, inp, out, "kr", resume=True)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()
    assert kills >= 2
    got = read_rows(out)
    assert [r[0] for r in got] == [str(n) for n in ns]
    assert [r[2] for r in got] == ["even" if n % 2 == 0 else "odd" for n in ns]
    assert not list(tmp_path.glob(".out.csv.tmp-*"))
