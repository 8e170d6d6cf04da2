"""benchmarks/auto_scale.py at its smoke size, as CI runs it: a scripted teacher that burns CPU per call,
three synthetic data sets, two job sizes, two plan seeds each. Its JSON holds every row and every job's plan, and no job cost
more than the planner's bound (1.05x the large model alone, one-time costs included)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_smoke_run_writes_every_job_and_keeps_the_bound(tmp_path):
    out = tmp_path / "smoke.json"
    env = {**os.environ, "COMPOUND_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [
            sys.executable,
            "auto_scale.py",
            "--smoke",
            "--plans",
            "2",
            "--json",
            str(out),
            "--plot",
            str(tmp_path / "p.png"),
        ],
        cwd=ROOT / "benchmarks",
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert sorted((r["data"], r["rows"], r["plan_seed"]) for r in rows) == sorted(
        (d, n, seed) for d in ("binary", "topic", "three-class") for n in (100, 400) for seed in (0, 1)
    )
    for key, spread in result["spread"].items():  # two plans per job: their lowest, mean and highest
        mine = [r["x_large"] for r in rows if f"{r['data']}/{r['rows']}" == key]
        assert spread["x_large"]["min"] == min(mine) and spread["x_large"]["max"] == max(mine)
    for r in rows:
        assert r["auto_cpu_s"] <= 1.05 * r["large_cpu_s"] + 0.1, r  # 0.1 s: the clock's granularity
        assert r["auto_acc"] >= r["large_acc"] - 0.05
    assert all("plan" in d and "rows_by_stage" in d for d in result["details"].values())
    assert (tmp_path / "p.png").stat().st_size > 0
