"""Table throughput: compound's classify operator against a plain loop over the raw engine in use.

    python benchmarks/table_throughput.py --rows 500 --json out.json

Both sides classify the same rows with the embedded small model, greedy, one row at a time, with the
same prompts: compound builds them, and the raw loop sends exactly those messages and the same JSON
schema straight to the engine (xllamacpp's ``Server.handle_chat_completions`` by default;
``COMPOUND_BENCH_ENGINE=llama-cpp-python`` for ``Llama.create_chat_completion``). Each side runs in its own fresh process (see
``_common.run_phase``); model loading is not timed. The cached re-run then runs the same operator again
in the compound process (median of five): every row is served from compound's row cache.

Keys: ``throughput_ratio_vs_raw`` (compound rows/s over raw rows/s), ``cached_rows_per_s``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time

import pandas as pd
from _common import parse, parser, report, run_phase

ITEMS = [
    "the soup",
    "our waiter",
    "the room",
    "delivery",
    "the price",
    "the app",
    "support",
    "the screen",
    "checkout",
    "the bed",
]
GOOD = ["was lovely", "was fast and friendly", "exceeded my hopes", "works perfectly", "made my day"]
BAD = ["was cold", "was rude and slow", "broke after a day", "is a total mess", "ruined the evening"]
LABELS = ["positive", "negative"]


def make_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Distinct short reviews (made here), so no two rows share a prompt."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        good = rng.random() < 0.5
        rows.append({"id": i, "review": f"#{i}: {rng.choice(ITEMS)} {rng.choice(GOOD if good else BAD)}."})
    return pd.DataFrame(rows)


def build(rows: int):
    import compound
    from compound.core.settings import get_settings
    from compound.models.llama_cpp import LlamaCppBackend
    from compound.tables import operators as ops

    compound.configure(home=tempfile.mkdtemp(), max_concurrency=1)
    df = make_rows(rows)
    backend = LlamaCppBackend(
        get_settings().small, n_ctx=2048, n_threads=2, engine=os.environ.get("COMPOUND_BENCH_ENGINE", "xllamacpp")
    )
    return df, backend, ops.classify(df, "sentiment", LABELS, input_columns=["review"], model=backend)


def first_request(program, row: str):
    """The first model request the step makes for a row (what the raw loop sends)."""
    return next(program.protocol({"row": row}, 0, ()))


def phase_raw(rows: int) -> dict:
    df, backend, op = build(rows)
    raw = backend.engine  # the engine alone: requests are translated before the clock starts
    native = [raw.native_request(backend.completion_kwargs(first_request(op.program, t))) for _, t in op.tasks]
    raw.call_native(native[0])  # warm up
    t0 = time.perf_counter()
    labels = [json.loads(raw.call_native(n)["choices"][0]["message"]["content"])["sentiment"] for n in native]
    return {"seconds": time.perf_counter() - t0, "labels": labels}


def phase_compound(rows: int) -> dict:
    from compound.store.sqlite import flush_all
    from compound.tables.jobs import process_table

    df, backend, op = build(rows)
    backend.generate(first_request(op.program, "warm up"), cache=False)
    t0 = time.perf_counter()
    first = process_table(op, df)
    seconds = time.perf_counter() - t0
    flush_all()
    cached_runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        again = process_table(op, df)
        cached_runs.append(time.perf_counter() - t0)
    cached = statistics.median(cached_runs)
    assert again.computed == 0 and again.df.equals(first.df), "the cached re-run must compute nothing and match"
    return {"seconds": seconds, "cached_seconds": cached, "labels": first.df["sentiment"].tolist()}


def main() -> None:
    p = parser("classify throughput: compound vs the raw engine, and cached re-runs")
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--phase", choices=["raw", "compound"], help=argparse_hidden())
    args = parse(p, rows=4)
    if args.phase:
        print(json.dumps((phase_raw if args.phase == "raw" else phase_compound)(args.rows)))
        return
    raw = run_phase(__file__, "raw", "--rows", str(args.rows))
    ours = run_phase(__file__, "compound", "--rows", str(args.rows))
    n = args.rows
    agree = sum(a == b for a, b in zip(raw["labels"], ours["labels"], strict=False)) / n
    rows = [
        {
            "run": f"raw {os.environ.get('COMPOUND_BENCH_ENGINE', 'xllamacpp')} loop",
            "rows": n,
            "seconds": raw["seconds"],
            "rows_per_s": n / raw["seconds"],
        },
        {"run": "compound classify", "rows": n, "seconds": ours["seconds"], "rows_per_s": n / ours["seconds"]},
        {
            "run": "compound classify, cached re-run",
            "rows": n,
            "seconds": ours["cached_seconds"],
            "rows_per_s": n / ours["cached_seconds"],
        },
    ]
    summary = {
        "throughput_ratio_vs_raw": raw["seconds"] / ours["seconds"],
        "cached_rows_per_s": n / ours["cached_seconds"],
        "labels_agree_with_raw": agree,
        "model": "smollm2-135m",
    }
    report(f"classify {n} rows with smollm2-135m", rows, summary, args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
