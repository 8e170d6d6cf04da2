"""A table job for the Ray tests, run in a process of its own so a test can kill it (the driver).

    python rayjob.py --address HOST:PORT --job J --rows 400 --log calls.log [--calls 100] [--model smollm2-135m]

The fake model answers like a classifier after ``--latency`` seconds and appends each row it really
computes to ``--log`` (one line per call, written at once), so a test can count how often each row was
computed across kills. It prints one JSON line with the job's figures when the job ends or stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd

THINGS = ["whale", "ant", "truck", "pebble", "elephant", "mouse", "bus", "seed"]
BIG = ("whale", "truck", "elephant", "bus")


def table(rows: int, tag: str = "", bad_every: int = 0) -> pd.DataFrame:
    """``rows`` distinct rows (``tag`` keeps each test's prompts apart in the workers' response cache);
    every ``bad_every``-th one makes the fake model reply something that never parses."""
    things = [
        f"{'unparseable ' if bad_every and i % bad_every == bad_every - 1 else ''}{THINGS[i % len(THINGS)]} "
        f"number {i} {tag}"
        for i in range(rows)
    ]
    return pd.DataFrame({"id": range(rows), "thing": things})


def label(log: str, request) -> str:
    text = "\n".join(m.content for m in request.messages)  # a repair request shows the row earlier on
    if log:
        line = next(x for x in text.splitlines() if "thing:" in x)  # the row
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line}\t{os.getpid()}\n".encode())
        finally:
            os.close(fd)
    if "unparseable" in text:
        return "not json at all"
    return json.dumps({"size": "big" if any(w in text for w in BIG) else "small"})


def sizes(df: pd.DataFrame) -> list:
    """The labels written, None where a row was left empty."""
    return [None if pd.isna(v) else v for v in df["size"]]


def classify(df: pd.DataFrame, model: str, log: str, latency_s: float):
    from functools import partial

    from compound import ScriptedBackend
    from compound.tables import operators as ops

    backend = model if model != "fake" else ScriptedBackend(partial(label, log), model="sizer", latency_s=latency_s)
    return ops.classify(df, "size", ["big", "small"], input_columns=["thing"], model=backend)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--job")
    p.add_argument("--rows", type=int, default=400)
    p.add_argument("--log", default="")
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--calls", type=int)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--resources", default="{}")
    p.add_argument("--model", default="fake")
    p.add_argument("--tag", default="")
    p.add_argument("--bad-every", type=int, default=0)
    a = p.parse_args()

    import ray

    import compound
    from compound.tables.jobs import JobStopped, process_table
    from compound.tables.ray_runner import RayRunner

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get the fake model by value
    df = table(a.rows, a.tag, a.bad_every)
    op = classify(df, a.model, a.log, a.latency)
    runner = RayRunner(
        address=a.address, workers=a.workers, batch_size=a.batch, resources=json.loads(a.resources), start_timeout_s=60
    )
    out: dict = {}
    with compound.budget(calls=a.calls) as b:
        try:
            run = process_table(op, df, job_id=a.job, runner=runner)
            out = {"computed": run.computed, "from_checkpoint": run.from_checkpoint, "failed": len(run.failed or {})}
            out["sizes"] = sizes(run.df)
            out["usage"] = run.usage.physical.to_dict()
        except JobStopped as e:
            out = {"stopped": str(e.cause), "done": e.done}
    out["budget_calls"] = b.used.calls
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
