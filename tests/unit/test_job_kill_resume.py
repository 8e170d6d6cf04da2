"""A job killed with SIGKILL at random points, again and again, then resumed, gives exactly the output of
an uninterrupted run: no row missing, none twice."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

SCRIPT = str(Path(__file__).parent.parent / "fixtures" / "table_job.py")
ROWS = 300


def job(home, args, wait=True):
    env = {**os.environ, "COMPOUND_HOME": str(home)}
    p = subprocess.Popen(
        [sys.executable, SCRIPT, *map(str, args)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if wait:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    return p


def done_rows(home):
    """Rows committed for the job so far, or None before the job exists."""
    import sqlite3

    if not (home / "tables.sqlite").exists():
        return None
    conn = sqlite3.connect(home / "tables.sqlite")
    try:
        if conn.execute("SELECT 1 FROM jobs WHERE id='killed'").fetchone() is None:
            return None
        return conn.execute("SELECT COUNT(*) FROM results WHERE job_id='killed'").fetchone()[0]
    except sqlite3.OperationalError:  # the schema was not written yet
        return None
    finally:
        conn.close()


def test_sigkill_at_random_points_then_resume(tmp_path):
    inp = tmp_path / "numbers.csv"
    pd.DataFrame({"n": range(ROWS), "text": [f"row {i}" for i in range(ROWS)]}).to_csv(inp, index=False)

    job(tmp_path / "clean-home", [inp, tmp_path / "clean.csv", "clean"])
    expected = pd.read_csv(tmp_path / "clean.csv")
    assert expected["parity"].tolist() == ["even" if i % 2 == 0 else "odd" for i in range(ROWS)]

    home, out = tmp_path / "home", tmp_path / "out.csv"
    rng = random.Random(7)
    kills = 0
    done_at_kill = []
    while kills < 10:
        started = done_rows(home) is not None
        p = job(home, [inp, out, "killed"] + (["--resume"] if started else []), wait=False)
        deadline = time.monotonic() + 60
        while done_rows(home) is None and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # a loaded machine may take a while to start the job: kill only once it runs
        time.sleep(rng.uniform(0.05, 0.6))
        if p.poll() is not None:  # finished before the kill
            assert p.returncode == 0, p.stderr.read().decode()
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
        done_at_kill.append(done_rows(home))
        if out.exists():  # the kill came after the output was written: the job had finished
            assert done_at_kill[-1] == ROWS
            break
    if not out.exists():
        job(home, [inp, out, "killed", "--resume"])
    got = pd.read_csv(out)
    assert kills >= 10
    assert sum(1 for d in done_at_kill if d and 0 < d < ROWS) >= 3, done_at_kill  # several kills landed mid-job
    pd.testing.assert_frame_equal(got, expected)

    import sqlite3

    conn = sqlite3.connect(home / "tables.sqlite")
    keys = [k for (k,) in conn.execute("SELECT row_key FROM results WHERE job_id='killed'")]
    assert len(keys) == len(set(keys)) == ROWS  # every row once (rows are keyed by their content)
