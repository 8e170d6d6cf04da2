"""Shared by the benchmark scripts: a results table on stdout and a JSON file."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    return p


def run_phase(script: str, phase: str, *args: str) -> dict[str, Any]:
    """Run one side of a comparison in a fresh process and return the JSON it prints last.

    In-process inference engines keep native thread pools per calling thread (llama.cpp's OpenMP team);
    two sides in one process would each leave a pool that slows the other, so each side gets its own
    process, as it would in real use."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, script, "--phase", phase, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def report(title: str, rows: list[dict[str, Any]], summary: dict[str, Any], out: Path | None) -> None:
    table = Table(title=title)
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))
    console = Console()
    console.print(table)
    for k, v in summary.items():
        console.print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    if out is not None:
        out.write_text(json.dumps({**summary, "rows": rows, "machine": machine()}, indent=2))
        console.print(f"wrote {out}")
