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
    add_smoke(p)
    return p


def add_smoke(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--smoke", action="store_true", help="a CI-sized run (a few rows, the small model): checks it runs, not speed"
    )


def parse(p: argparse.ArgumentParser, **smoke: Any) -> argparse.Namespace:
    """The parsed arguments; with ``--smoke``, ``smoke``'s sizes replace the options of the same name
    (tests/unit/benchmarks/test_smoke.py runs every script so, so that none can rot unnoticed)."""
    args = p.parse_args()
    if getattr(args, "smoke", False):
        for name, value in smoke.items():
            setattr(args, name, value)
    return args


def smoke_args(args: argparse.Namespace) -> list[str]:
    """``--smoke`` when this run is one: passed on to the phases a script runs in fresh processes."""
    return ["--smoke"] if getattr(args, "smoke", False) else []


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


def wait_for_server(url: str, proc: Any, log: Path, timeout_s: float = 180) -> None:
    """Wait until ``url`` answers 200, or exit with the tail of the server's log if it died or took too long."""
    import time

    import httpx

    deadline = time.time() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"the server at {url} did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.25)


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


def distill_parser(description: str, max_len: int, work: str) -> argparse.ArgumentParser:
    """The options of a generative distillation benchmark: models, training settings, its work folder."""
    p = parser(description)
    p.add_argument("--teacher", default="qwen2.5-coder-1.5b")
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-len", type=int, default=max_len, help="training sequence length in tokens")
    p.add_argument("--batch-size", type=int, default=4, help="8 sequences of ~700 tokens took 24 GB: keep it small")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path(work))
    return p


def distill_and_score(args: Any, teacher: Any, program: Any, rows: list[dict[str, Any]], score: Any, cases: list):
    """Distill ``teacher`` (the program the teacher runs) from ``rows`` into ``<work>/student``, unless a
    student is already there (one teacher answer per row, kept when it meets the program's requirements;
    a killed run resumes from its checkpoint). Then ``score(program, cases, name)`` for the small base
    model, the student as served (merged into its base where the merge passed its check; a student saved
    before merging existed is merged first), the same student with its adapter unmerged, and the teacher,
    each with the same ``program`` and the response cache off, so every scored answer is a fresh call
    measured now. Returns (results by config, the student's record)."""
    import compound
    from compound.core.settings import configured
    from compound.optimize.distill import Distill, Filter, TrainConfig, load_student, student_spec
    from compound.optimize.distill.data import student_program
    from compound.optimize.distill.merged import add_merged

    folder = args.work / "student"
    if not (folder / "student.json").exists():
        train = TrainConfig(lr=args.lr, epochs=args.epochs, max_len=args.max_len, batch_size=args.batch_size)
        distill = Distill(args.teacher, args.student, folder, samples=1, filter=Filter(), max_repeat=1, train=train)
        distill.compile(teacher, rows)
    add_merged(folder)  # a student saved before merging existed gets its merged model (checked) first
    student, record = load_student(program, folder)
    configs = {"small": program.with_(model=args.student), "student": student}
    if (record.get("merged") or {}).get("served"):  # beside it, the same student with its adapter unmerged
        configs["student_adapter"] = student_program(program, student_spec(record["base"], folder / record["adapter"]))
    configs["teacher"] = program.with_(model=args.teacher)
    with configured(cache=False):
        results = {name: compound.run_sync(score(p, cases, name)) for name, p in configs.items()}
    return results, record


def student_vs_teacher(score: str, small: dict, student: dict, teacher: dict, record: dict) -> dict[str, Any]:
    """What every distillation benchmark reports: the task ``score`` of the small model, the student and the
    teacher, their CPU per row, and the student's one-time cost (from its ``student.json`` record)."""
    return {
        f"small_{score}": small[score],
        f"student_{score}": student[score],
        f"teacher_{score}": teacher[score],
        "quality_ratio": student[score] / teacher[score] if teacher[score] else None,
        "small_cpu_per_row": small["cpu_s_per_row"],
        "student_cpu_per_row": student["cpu_s_per_row"],
        "teacher_cpu_per_row": teacher["cpu_s_per_row"],
        "cpu_ratio": student["cpu_s_per_row"] / teacher["cpu_s_per_row"],
        "label_cpu_s": record["cost"]["label_cpu_s"],
        "train_cpu_s": record["cost"]["train_cpu_s"],
        "train_steps": record["train"]["steps"],
        "resumed_from_step": record["train"]["resumed_from"],
    }


def report_distilled(title: str, score: str, results: dict, record: dict, args: Any, row: dict, summary: dict) -> None:
    """What each generative distillation benchmark prints and writes: one row (``row``: the task and its
    sizes, then the ``student_vs_teacher`` figures, ``row``'s ``extra`` figures, the break-even row count),
    every config's figures beside ``summary``, and every answer in ``<json>.rows.json``."""
    s, t = results["student"], results["teacher"]
    cost = record["cost"]
    one_time = sum(cost.values())  # labelling, filtering, training and merging
    saving = t["cpu_s_per_row"] - s["cpu_s_per_row"]
    extra = row.pop("extra", {})
    row = {
        **row,
        "kept": record["data"]["kept"],
        **student_vs_teacher(score, results["small"], s, t, record),
        **extra,
        **(
            {
                f"adapter_{score}": results["student_adapter"][score],
                "adapter_cpu_per_row": results["student_adapter"]["cpu_s_per_row"],
            }
            if "student_adapter" in results
            else {}
        ),
        "break_even_rows": round(one_time / saving) if saving > 0 else None,
    }
    summary = {
        "teacher": args.teacher,
        "student": args.student,
        "score": score,
        "configs": {k: {m: v for m, v in r.items() if m != "rows"} for k, r in results.items()},
        **summary,
    }
    report(title, [row], summary, args.json)
    if args.json:
        args.json.with_suffix(".rows.json").write_text(json.dumps({k: r["rows"] for k, r in results.items()}, indent=1))
