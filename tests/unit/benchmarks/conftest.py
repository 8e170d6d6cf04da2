"""The benchmarks' smoke runs: each script at its ``--smoke`` size, as CI runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture
def benchmark_smoke(tmp_path, isolated_home):
    """``run(script_name)``: run ``benchmarks/<script_name> --smoke --json`` in a subprocess with the test's
    COMPOUND_HOME; assert it exits 0 and return the JSON it wrote."""

    def run(script: str) -> dict:
        out = tmp_path / f"{script}.json"
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), "--smoke", "--json", str(out)],
            capture_output=True,
            text=True,
            env={**os.environ, "COMPOUND_HOME": str(isolated_home)},
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(out.read_text())

    return run
