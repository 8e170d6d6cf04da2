"""``benchmarks/operators.py --smoke``: the operators benchmark end to end on its scripted oracle (CI size)."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "operators.py"


def test_operators_benchmark_smoke_writes_every_task_with_its_reference(tmp_path, isolated_home):
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
    rows = {r["task"]: r for r in json.loads(out.read_text())["rows"]}
    join, cascade = rows["join"], rows["join + cascade"]
    # the oracle is always right: what the join misses is what blocking dropped, and it says so
    assert join["precision"] == 1.0 and join["recall"] == join["blocking_recall"]
    assert join["reached_model"] == join["candidates"] < join["pairs"]
    assert cascade["reached_model"] <= cascade["candidates"]
    top = rows["top_k (k=5)"]
    assert top["ndcg"] == 1.0 and top["comparisons"] <= top["bound"] < top["all_pairs"]
    world = rows["aggregate world_1"]
    assert world["rows"] == 120 and world["folded"] == 120 and world["dropped"] == 0
    assert world["group_tokens_estimate"] > world["context_tokens"]  # the group is larger than the context
    assert rows["dedup"]["precision"] == 1.0 and rows["dedup"]["candidates"] < rows["dedup"]["all_pairs"]
