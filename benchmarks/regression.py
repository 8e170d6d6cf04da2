"""Is this tree slower than another? The same workloads, side by side, in alternating fresh processes.

    python benchmarks/regression.py --base 9df3c27 --rounds 20 --json out.json

``--base`` (and ``--head``, by default this checkout) is a source tree (a folder holding ``src/compound``)
or a git revision of this repository (exported with ``git archive`` to a temporary folder). Each round
runs one fresh process per tree with ``PYTHONPATH=<tree>/src``, the two in the order base, head in even
rounds and head, base in odd ones, so that drift in the machine's speed and the load of other
processes fall on both sides alike. Each process runs:

- ``typed``: the framework overhead of one typed call (one input, one output field) on an instant
  ``ScriptedBackend``, caching and tracing on, distinct inputs, after 50 warm-up calls: what
  ``benchmarks/overhead.py`` measures for compound. Median wall per call, and process CPU per call with
  the queued cache and trace writes flushed.
- ``build``: ``compound.tables.classify`` over ``--rows`` short reviews (``table_throughput.py``'s rows).
- ``first``: ``process_table`` of that op, every row computed (instant scripted replies, so the time is
  compound's per-row work: row identity, cache and store, usage, assembling the frame), writes flushed.
  A warm-up job on five other rows runs before it (imports and store creation are one-time costs).
- ``cached``: the same ``process_table`` again, every row from the row cache (median of five).

CPU is ``time.process_time`` (every thread of the process, the store's writer included): the figure that
matters on a shared machine. Per metric it prints each side's median and spread (``*_iqr``: the
interquartile range over the median), the median of the per-round ratios (``paired``: head / base; a
round's two processes ran back to back), each side's least figure and their ratio (``min_ratio``: other
load only adds time, so the least disturbed run is the best estimate of the cost itself), and whether
head is within ``--tolerance`` of base by both ratios (``ok``: ``yes``, ``NO``, or ``?`` when they
disagree). Key: ``worst_cpu_ratio``, the larger ratio of the worst CPU metric. Wide tables: set
``COLUMNS=160``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from _common import parse, parser, report

ROOT = Path(__file__).resolve().parents[1]
#: the metrics a phase reports, with the unit each is printed in
METRICS = {
    "typed_wall_per_call": "us",
    "typed_cpu_per_call": "us",
    "build_cpu": "ms",
    "first_cpu": "ms",
    "first_wall": "ms",
    "cached_cpu": "ms",
    "cached_wall": "ms",
}
SCALE = {"us": 1e6, "ms": 1e3}


def phase(rows: int, calls: int) -> dict:
    """One side's figures, measured in this process against whichever ``compound`` it imports.

    Only names that every compared tree exports are used (``compound.call_typed``,
    ``compound.process_table``, ``compound.tables.classify``, ``compound.ScriptedBackend``)."""
    from pydantic import BaseModel
    from table_throughput import LABELS, make_rows

    import compound
    import compound.tables
    from compound.store.sqlite import flush_all

    class Answer(BaseModel):
        answer: str

    # as in a terminal, whatever started the harness: Ctrl-C is Python's (a background job ignores it)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    compound.configure(home=tempfile.mkdtemp(prefix="regression-"), max_concurrency=1)
    out: dict = {"compound": compound.__file__}

    model = compound.ScriptedBackend(['{"answer": "Paris"}'])
    for i in range(50):
        compound.call_typed(Answer, f"warm {i}", model=model)
    walls = []
    c0 = time.process_time()
    for i in range(calls):
        t0 = time.perf_counter()
        compound.call_typed(Answer, f"question: what is the capital of country {i}?", model=model)
        walls.append(time.perf_counter() - t0)
    flush_all()
    out["typed_wall_per_call"] = statistics.median(walls)
    out["typed_cpu_per_call"] = (time.process_time() - c0) / calls

    labeller = compound.ScriptedBackend(['{"sentiment": "positive"}'], model="regression-labeller")
    warm = make_rows(5, seed=1).assign(review=lambda d: "warm-up " + d["review"])
    compound.process_table(compound.tables.classify(warm, "sentiment", LABELS, model=labeller), warm)
    flush_all()
    df = make_rows(rows)
    c0 = time.process_time()
    op = compound.tables.classify(df, "sentiment", LABELS, input_columns=["review"], model=labeller)
    out["build_cpu"] = time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    first = compound.process_table(op, df)
    flush_all()
    out["first_cpu"], out["first_wall"] = time.process_time() - c0, time.perf_counter() - t0
    if first.computed != rows or (first.df["sentiment"] != "positive").any():
        raise SystemExit(f"the first run computed {first.computed} of {rows} rows: the harness drives this tree wrong")
    cpu, wall = [], []
    for _ in range(5):
        c0, t0 = time.process_time(), time.perf_counter()
        again = compound.process_table(op, df)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
        if again.computed != 0 or not again.df.equals(first.df):
            raise SystemExit("the cached re-run computed rows or changed the result")
    out["cached_cpu"], out["cached_wall"] = statistics.median(cpu), statistics.median(wall)
    return out


def source_tree(spec: str, stack: ExitStack) -> Path:
    """A folder holding ``src/compound``: ``spec`` itself, or the git revision ``spec`` exported."""
    path = Path(spec)
    if (path / "src" / "compound").is_dir():
        return path.resolve()
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="regression-tree-")))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", spec, "src"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--base/--head {spec!r} is neither a source tree (with src/compound) nor a git revision")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_side(tree: Path, rows: int, calls: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cmd = [sys.executable, __file__, "--phase", "--rows", str(rows), "--calls", str(calls)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the phase against {tree} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["compound"].startswith(str(tree / "src")):
        raise SystemExit(f"the phase against {tree} imported compound from {result['compound']}")
    return result


def spread(values: list[float]) -> float:
    """The interquartile range over the median (0 with fewer than two values)."""
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4, method="inclusive")
    return (q[2] - q[0]) / statistics.median(values)


def verdict(paired: float, least: float, tolerance: float) -> str:
    """``yes`` when head is within ``tolerance`` of base by both ratios, ``NO`` when by neither, ``?`` else."""
    within = [r <= 1 + tolerance for r in (paired, least)]
    return "yes" if all(within) else "NO" if not any(within) else "?"


def main() -> None:
    p = parser("head against base: typed-call overhead and a table job's per-row work, side by side")
    p.add_argument("--base", default="9df3c27", help="a source tree or git revision (default: before issue #29)")
    p.add_argument("--head", default=str(ROOT), help="a source tree or git revision (default: this checkout)")
    p.add_argument("--rounds", type=int, default=20, help="alternations of the two sides")
    p.add_argument("--rows", type=int, default=2000, help="rows of the table job")
    p.add_argument("--calls", type=int, default=2000, help="typed calls timed per process")
    p.add_argument("--tolerance", type=float, default=0.05, help="how much slower head may be")
    p.add_argument("--phase", action="store_true", help=argparse.SUPPRESS)
    args = parse(p, rounds=1, rows=40, calls=40)
    if args.phase:
        print(json.dumps(phase(args.rows, args.calls)))
        return
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"base": [], "head": []}
    with ExitStack() as stack:
        trees = {"base": source_tree(args.base, stack), "head": source_tree(args.head, stack)}
        for r in range(args.rounds):
            for side in ("base", "head") if r % 2 == 0 else ("head", "base"):
                runs[side].append(run_side(trees[side], args.rows, args.calls))
            print(f"round {r + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    rows, ratios = [], {}
    for metric, unit in METRICS.items():
        base = [run[metric] for run in runs["base"]]
        head = [run[metric] for run in runs["head"]]
        paired = statistics.median(h / b for h, b in zip(head, base, strict=True))
        least = min(head) / min(base)  # other load only adds time: the least disturbed run of each side
        ratios[metric] = max(paired, least)
        rows.append(
            {
                "metric": f"{metric} ({unit})",
                "base": statistics.median(base) * SCALE[unit],
                "base_iqr": spread(base),
                "base_min": min(base) * SCALE[unit],
                "head": statistics.median(head) * SCALE[unit],
                "head_iqr": spread(head),
                "head_min": min(head) * SCALE[unit],
                "paired": paired,
                "min_ratio": least,
                "ok": verdict(paired, least, args.tolerance),
            }
        )
    cpu = {k: v for k, v in ratios.items() if "cpu" in k}
    summary = {
        "base": args.base,
        "head": args.head,
        "rounds": args.rounds,
        "table_rows": args.rows,
        "typed_calls": args.calls,
        "worst_cpu_ratio": max(cpu.values()),
        "worst_cpu_metric": max(cpu, key=lambda k: cpu[k]),
        "cpu_within_tolerance": all(v <= 1 + args.tolerance for v in cpu.values()),
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    report(f"head ({args.head}) against base ({args.base}), {args.rounds} alternating rounds", rows, summary, args.json)
    if args.json:  # every process's figures too
        args.json.write_text(json.dumps({**json.loads(args.json.read_text()), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
