"""``benchmarks/optimize_search.py --smoke``: the optimize search benchmark end to end on scripted models."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "optimize_search.py"


def test_optimize_search_benchmark_smoke_compares_the_forecast_with_what_was_spent(tmp_path, isolated_home):
    out = tmp_path / "out.json"
    env = {**os.environ, "COMPOUND_HOME": str(isolated_home)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    measures = {r["measure"]: r for r in result["rows"]}
    # every forecast call is one the search made (the cache is off), and the priced cost follows the tokens
    assert measures["calls"]["forecast"] == measures["calls"]["spent"] > 0
    assert abs(measures["cost_usd"]["spent / forecast"] - 1) <= 0.25
    assert result["met"] and result["chosen"] == "medium"
    assert result["chosen usd_per_row"] < result["large usd_per_row"]
    assert any(c["pareto"] for c in result["configs"]) and len(result["configs"]) == result["configurations"]
