"""compound's per-call overhead against DSPy's, and its throughput against the raw engine in use.

    python benchmarks/overhead.py --json out.json

1. Overhead: a typed call (one input, one output field) on compound's scripted backend against the same
   ``dspy.Predict`` on DSPy's ``DummyLM``. Both fake models answer instantly, so the time per call is the
   framework's own overhead (prompt building, parsing, caching, accounting, tracing). Median over many
   calls with distinct inputs (no cache hits). Key: ``overhead_ratio_vs_dspy`` (compound / DSPy).
2. Throughput: completion tokens per second through ``LlamaCppBackend.generate`` against the raw
   engine's own call on the same prompts and the embedded model (xllamacpp's
   ``Server.handle_chat_completions`` by default; with ``COMPOUND_BENCH_ENGINE=llama-cpp-python``,
   ``Llama.create_chat_completion``), each side in its own fresh process (``_common.run_phase``), the
   sides alternating three times; the median of each side.
   Key: ``throughput_ratio_vs_raw`` (compound / raw).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from _common import parse, parser, report, run_phase, smoke_args
from pydantic import BaseModel

import compound
from compound.core.settings import get_settings
from compound.models.llama_cpp import LlamaCppBackend
from compound.models.typed import call_typed
from compound.store.sqlite import flush_all


class Answer(BaseModel):
    answer: str


def median_per_call(fn, n: int) -> tuple[float, float]:
    """Median wall seconds per call, and process CPU seconds per call (background threads included)."""
    times = []
    c0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    flush_all()  # compound's queued writes are part of its CPU cost
    return statistics.median(times), (time.process_time() - c0) / n


def compound_overhead(n: int) -> tuple[float, float]:
    model = compound.ScriptedBackend(['{"answer": "Paris"}'])
    for i in range(50):  # warm up
        call_typed(Answer, f"warm {i}", model=model)
    return median_per_call(
        lambda i: call_typed(Answer, f"question: what is the capital of country {i}?", model=model), n
    )


def dspy_installed(smoke: bool) -> bool:
    """Whether DSPy is there to compare with; only a smoke run goes on without it (its row then says nan)."""
    try:
        import dspy  # noqa: F401
    except ImportError:
        if not smoke:
            raise SystemExit("the overhead comparison needs DSPy: pip install 'compound[bench]'") from None
        print("DSPy is not installed (pip install 'compound[bench]'): its side is skipped in this smoke run")
        return False
    return True


def dspy_overhead(n: int) -> tuple[float, float]:
    import dspy
    from dspy.utils import DummyLM

    lm = DummyLM([{"answer": "Paris"}] * (n + 100))
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm):
        for i in range(50):
            predict(question=f"warm {i}")
        return median_per_call(lambda i: predict(question=f"what is the capital of country {i}?"), n)


ENGINE = os.environ.get("COMPOUND_BENCH_ENGINE", "xllamacpp")
PROMPTS = [
    "Write one sentence about the sea.",
    "Name three fruits.",
    "What is the capital of Italy?",
    "Describe a cat in a few words.",
    "Give a tip for sleeping well.",
    "What colour is the sky at noon?",
    "Say something kind.",
    "Explain rain to a child.",
]


def phase_tokens_per_s(side: str, rounds: int = 2, max_tokens: int = 48) -> dict[str, float]:
    """Completion tokens per second over the prompts, through compound or the raw engine."""
    backend = LlamaCppBackend(get_settings().small, n_ctx=2048, n_threads=2, engine=ENGINE)
    if side == "raw":
        raw = backend.engine  # the engine alone: requests are translated before the clock starts
        native = {
            p: raw.native_request(
                backend.completion_kwargs(compound.Request((compound.Message("user", p),), max_tokens))
            )
            for p in [*PROMPTS, "warm up"]
        }

        def call(p: str) -> int:
            return raw.call_native(native[p])["usage"]["completion_tokens"]
    else:

        def call(p: str) -> int:
            return backend.generate(p, max_tokens=max_tokens, temperature=0.0, cache=False).usage.completion_tokens

    call("warm up")
    tokens, t0 = 0, time.perf_counter()
    for _ in range(rounds):
        for p in PROMPTS:
            tokens += call(p)
    return {"tokens_per_s": tokens / (time.perf_counter() - t0), "tokens": tokens}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--phase", choices=["raw", "compound"], help=argparse.SUPPRESS)
    p.add_argument("--overhead-only", action="store_true", help="skip the llama.cpp throughput comparison")
    p.add_argument("--calls", type=int, default=2000, help="typed calls timed per framework")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the throughput sides")
    args = parse(p, calls=50, rounds=1)
    with tempfile.TemporaryDirectory() as home:
        compound.configure(home=home)  # a fresh cache and trace store: tracing and caching stay on
        if args.phase:
            print(json.dumps(phase_tokens_per_s(args.phase, *((1, 8) if args.smoke else ()))))
            return
        ours, ours_cpu = compound_overhead(args.calls)
        theirs, theirs_cpu = dspy_overhead(args.calls) if dspy_installed(args.smoke) else (float("nan"),) * 2
        flush_all()  # commit queued cache and trace writes before the folder goes
    # the machine's speed drifts by ~10% over minutes: alternate the sides and take each side's median
    runs: dict[str, list[float]] = {"raw": [], "compound": []}
    for _ in range(0 if args.overhead_only else args.rounds):
        for side in runs:
            runs[side].append(run_phase(__file__, side, *smoke_args(args))["tokens_per_s"])
    tps = {side: statistics.median(v) if v else float("nan") for side, v in runs.items()}
    rows = [
        {
            "measure": "typed call overhead (median s/call)",
            "compound": ours,
            "baseline": theirs,
            "baseline is": "DSPy Predict + DummyLM",
            "ratio": ours / theirs,
        },
        {
            "measure": "CPU per typed call (s, background writes included)",
            "compound": ours_cpu,
            "baseline": theirs_cpu,
            "baseline is": "DSPy Predict + DummyLM",
            "ratio": ours_cpu / theirs_cpu,
        },
        {
            "measure": "completion tokens/s, smollm2-135m",
            "compound": tps["compound"],
            "baseline": tps["raw"],
            "baseline is": f"raw {ENGINE}",
            "ratio": tps["compound"] / tps["raw"],
        },
    ]
    summary = {
        "overhead_ratio_vs_dspy": ours / theirs,
        "throughput_ratio_vs_raw": tps["compound"] / tps["raw"],
        "compound_overhead_s": ours,
        "dspy_overhead_s": theirs,
        "cpu_ratio_vs_dspy": ours_cpu / theirs_cpu,
        "compound_tokens_per_s": tps["compound"],
        "raw_tokens_per_s": tps["raw"],
    }
    report("compound overhead and throughput", rows, summary, args.json)


if __name__ == "__main__":
    main()
