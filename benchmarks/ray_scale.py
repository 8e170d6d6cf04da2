"""Ray against the local runner: the same classify job on the same rows, here and on 1, 2 and 4 Ray workers.

    python benchmarks/ray_scale.py --json out.json            # 48 rows, the embedded small model
    python benchmarks/ray_scale.py --smoke                    # 6 rows, 1 and 2 workers (CI)
    python benchmarks/ray_scale.py --address auto --workers 1 2 4   # a cluster started with `ray start`

Each side runs in a fresh process (``_common.run_phase``). The local side is ``process_table`` on this
process, twice: llama.cpp on every core (the default) and on one thread (what one worker runs). A Ray side starts a Ray of its own in its process (or joins
``--address``), then its workers, one CPU and one llama.cpp thread each, each loading the model: that is
Ray's start-up, timed apart (wall and CPU). Then the rows: wall seconds, rows/s, and CPU seconds per row
counted two ways: ``cpu_per_row`` is every process of the side (the driver, Ray's own services and
the workers: what the machine spent), ``model_cpu_per_row`` only the model calls (compound's usage).
The labels of every side are compared with the local runner's.

On a shared machine the wall figures move with others' load; the CPU figures much less.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from _common import parser, report, run_phase
from table_throughput import LABELS, make_rows

# the Ray each side starts is its own, on this machine: no token written to ~/.ray for it
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _tree_cpu_s() -> float:
    """CPU seconds of this process and every process it started (Ray's services and workers)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # ended meanwhile
            pass
    return total


def _op(rows: int, model: str):
    import compound
    from compound.tables import operators as ops

    compound.configure(home=tempfile.mkdtemp(), cache=False)
    df = make_rows(rows)
    return df, ops.classify(df, "sentiment", LABELS, input_columns=["review"], model=model)


def phase_local(rows: int, model: str, threads: int | None) -> dict:
    import compound
    from compound.models.registry import get_model
    from compound.tables.jobs import process_table

    df, op = _op(rows, model)
    compound.configure(n_threads=threads)
    get_model(model).prepare()  # loading the model is start-up on this side too
    t0, c0 = time.perf_counter(), _tree_cpu_s()
    run = process_table(op, df)
    wall, cpu = time.perf_counter() - t0, _tree_cpu_s() - c0
    return {
        "labels": run.df["sentiment"].tolist(),
        "wall_s": wall,
        "cpu_s": cpu,
        "model_cpu_s": run.usage.physical.cpu_s,
    }


def phase_ray(rows: int, model: str, workers: int, address: str | None) -> dict:
    from compound.tables.jobs import process_table
    from compound.tables.ray_runner import RayRunner, connect

    df, op = _op(rows, model)
    runner = RayRunner(address=address, workers=workers, batch_size=max(1, rows // (workers * 4)))
    t0, c0 = time.perf_counter(), _tree_cpu_s()
    connect(runner.options)
    ray_init_s = time.perf_counter() - t0
    runner.prepare(op)  # the workers start and load the model
    start_wall, start_cpu = time.perf_counter() - t0, _tree_cpu_s() - c0
    t1, c1 = time.perf_counter(), _tree_cpu_s()
    run = process_table(op, df, runner=runner)
    wall, cpu = time.perf_counter() - t1, _tree_cpu_s() - c1
    return {
        "labels": run.df["sentiment"].tolist(),
        "ray_init_s": ray_init_s,
        "startup_wall_s": start_wall,
        "startup_cpu_s": start_cpu,
        "wall_s": wall,
        "cpu_s": cpu,
        "model_cpu_s": run.usage.physical.cpu_s,
    }


def main() -> None:
    p = parser("the same table job on the local runner and on 1, 2 and 4 Ray workers")
    p.add_argument("--rows", type=int, default=48)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--address", help="a running cluster (auto, HOST:PORT); default: a Ray started per side")
    p.add_argument("--phase", help=argparse_hidden())
    p.add_argument("--threads", type=int, help=argparse_hidden())
    args = p.parse_args()
    if args.smoke:
        args.rows, args.workers = 6, [1, 2]
    if args.phase == "local":
        print(json.dumps(phase_local(args.rows, args.model, args.threads)))
        return
    if args.phase == "ray":
        print(json.dumps(phase_ray(args.rows, args.model, args.workers[0], args.address)))
        return
    common = ["--rows", str(args.rows), "--model", args.model] + (["--address", args.address] if args.address else [])
    local = run_phase(__file__, "local", *common)
    one = run_phase(__file__, "local", *common, "--threads", "1")
    n = args.rows
    rows = [_row("local, all cores", n, local, local), _row("local, 1 thread", n, one, local)]
    for w in args.workers:
        rows.append(_row(f"ray, {w} worker(s)", n, run_phase(__file__, "ray", *common, "--workers", str(w)), local))
    best = max(rows[2:], key=lambda r: r["rows_per_s"])
    summary = {
        "model": args.model,
        "rows": n,
        "cores": os.cpu_count(),
        "best_ray": best["run"],
        "best_ray_speedup_vs_local": best["rows_per_s"] / rows[0]["rows_per_s"],
        "best_ray_speedup_vs_local_1_thread": best["rows_per_s"] / rows[1]["rows_per_s"],
        "ray_1_worker_cpu_per_row_vs_local_1_thread": rows[2]["cpu_per_row"] / rows[1]["cpu_per_row"],
    }
    report(f"classify {n} rows: local runner vs Ray workers ({args.model})", rows, summary, args.json)


def _row(name: str, n: int, side: dict, local: dict) -> dict:
    return {  # short column names: the table must fit a terminal
        "run": name,
        "start_s": side.get("startup_wall_s", 0.0),
        "start_cpu_s": side.get("startup_cpu_s", 0.0),
        "wall_s": side["wall_s"],
        "rows_per_s": n / side["wall_s"],
        "cpu_per_row": side["cpu_s"] / n,
        "model_cpu_per_row": side["model_cpu_s"] / n,
        "same_labels": sum(a == b for a, b in zip(side["labels"], local["labels"], strict=True)) / n,
    }


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
