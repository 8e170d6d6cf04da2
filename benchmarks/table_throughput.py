"""Table throughput: compound's classify operator against a plain loop over llama-cpp-python.

    python benchmarks/table_throughput.py --rows 500 --json out.json

Both sides classify the same rows with the embedded small model, greedy, one row at a time, with the
same prompts (compound builds them; the raw loop sends exactly those messages and the same JSON schema
to ``Llama.create_chat_completion``), each on its own loaded copy of the model. The cached re-run then
runs the same operator again: every row is served from compound's row cache.

Keys: ``throughput_ratio_vs_raw`` (compound rows/s over raw rows/s), ``cached_rows_per_s``.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import parser, report

import compound
from compound.models.embedded import SMALL
from compound.models.llama_cpp import LlamaCppBackend
from compound.program.typed import typed_request
from compound.store.sqlite import flush_all
from compound.tables import operators as ops
from compound.tables.jobs import run_table

ITEMS = ["the soup", "our waiter", "the room", "delivery", "the price", "the app", "support", "the screen", "checkout", "the bed"]
GOOD = ["was lovely", "was fast and friendly", "exceeded my hopes", "works perfectly", "made my day"]
BAD = ["was cold", "was rude and slow", "broke after a day", "is a total mess", "ruined the evening"]


def make_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Distinct short reviews (made here), so no two rows share a prompt."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        good = rng.random() < 0.5
        rows.append({"id": i, "review": f"#{i}: {rng.choice(ITEMS)} {rng.choice(GOOD if good else BAD)}."})
    return pd.DataFrame(rows)


def main() -> None:
    p = parser("classify throughput: compound vs raw llama-cpp-python, and cached re-runs")
    p.add_argument("--rows", type=int, default=500)
    args = p.parse_args()
    df = make_rows(args.rows)
    labels = ["positive", "negative"]
    with tempfile.TemporaryDirectory() as home:
        compound.configure(home=home)
        backend = LlamaCppBackend(SMALL, n_ctx=2048, n_threads=2)
        op = ops.classify_op(df, "sentiment", labels, input_columns=["review"], model=backend)

        # the raw loop: the very requests compound sends, straight to llama-cpp-python
        from llama_cpp import Llama

        raw = Llama(model_path=str(backend.llm.model_path), n_ctx=2048, n_threads=2, verbose=False)
        spec_out = op.program.output_type
        requests = [op.program._request({"row": text}, 0, ())[1] for _, text in op.tasks]
        kwargs = [backend.completion_kwargs(r) for r in requests]
        raw.create_chat_completion(**kwargs[0])  # warm up both
        backend.generate(requests[0], cache=False)

        t0 = time.perf_counter()
        raw_labels = []
        for kw in kwargs:
            out = raw.create_chat_completion(**kw)
            raw_labels.append(spec_out.model_validate_json(out["choices"][0]["message"]["content"]).sentiment)
        raw_s = time.perf_counter() - t0

        with compound.context(max_concurrency=1):
            t0 = time.perf_counter()
            first = run_table(op, df)
            ours_s = time.perf_counter() - t0
            flush_all()
            t0 = time.perf_counter()
            again = run_table(op, df)
            cached_s = time.perf_counter() - t0
        flush_all()
    agree = sum(a == b for a, b in zip(first.df["sentiment"], raw_labels)) / len(df)
    assert again.computed == 0 and again.df.equals(first.df), "the cached re-run must compute nothing and match"
    rows = [
        {"run": "raw llama-cpp-python loop", "rows": len(df), "seconds": raw_s, "rows_per_s": len(df) / raw_s},
        {"run": "compound classify", "rows": len(df), "seconds": ours_s, "rows_per_s": len(df) / ours_s},
        {"run": "compound classify, cached re-run", "rows": len(df), "seconds": cached_s, "rows_per_s": len(df) / cached_s},
    ]
    summary = {"throughput_ratio_vs_raw": (len(df) / ours_s) / (len(df) / raw_s), "cached_rows_per_s": len(df) / cached_s,
               "labels_agree_with_raw": agree, "model": SMALL}
    report(f"classify {len(df)} rows with {SMALL}", rows, summary, args.json)


if __name__ == "__main__":
    sys.exit(main())
