"""The embedded engines compared: xllamacpp (the default) against llama-cpp-python, on the same prompts.

    flock /work/heavy.lock python benchmarks/engine.py --json out.json [--models smollm2-135m,...]

``--sides`` names what is compared, ``ENGINE`` with its own flash-attention default or ``ENGINE:fa=on|off``;
the last side is the reference of every ratio (by default xllamacpp, xllamacpp with flash attention off,
and llama-cpp-python).

For each embedded model, each engine runs in its own fresh process (``_common.run_phase``), the sides
alternating over ``--rounds`` rounds, on the same distinct prompts of about 200 tokens, greedy,
``--threads`` llama.cpp threads (2 by default; 1 is robust on a machine shared with other work, where
two spinning OpenMP threads can stall each other). Each prompt is measured in two engine calls, through the raw engine (no compound layer):

1. ``max_tokens=1``: prompt processing. Prompt tokens/s = prompt tokens / wall seconds.
2. the same prompt, ``max_tokens=32``: the prompt is now cached (both engines reuse a repeated prefix),
   so generation tokens/s = completion tokens / wall seconds. ``cached_tokens`` shows the reuse.
3. the same prompt, ``max_tokens=1`` again: one token read, one generated, i.e. what a call costs apart
   from its tokens (``call_ms``: applying the chat template, the request and reply, the sampler set-up).
   ``decode_tok_per_s`` is call 2's rate net of it: (completion tokens - 1) / (call 2 - call 3 seconds).

CPU-s per call is the process CPU time (llama.cpp's threads included) of both calls together: one prompt
read and up to 32 tokens generated. One-time costs are apart: the model load (every phase), and with
``--install-costs xllamacpp,llama-cpp-python`` the time to install each engine (xllamacpp: a prebuilt wheel; llama-cpp-python: a
compile, AVX2, no AMX), each into a fresh folder with an empty pip cache.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import parse, parser, report, run_phase

SIDES = ["xllamacpp", "xllamacpp:fa=off", "llama-cpp-python"]
MAX_TOKENS = 32
FLASH = {"on": True, "off": False}


def side_config(side: str) -> tuple[str, bool | None]:
    """``ENGINE`` (its own flash-attention default) or ``ENGINE:fa=on|off``."""
    engine, _, option = side.partition(":")
    return engine, FLASH[option.removeprefix("fa=")] if option else None


def prompt(i: int) -> str:
    """Distinct prompts of about 200 tokens (made here)."""
    lines = [
        f"Ticket {i}-{j}: customer {i * 7 + j} reports that order {1000 + i * 13 + j} arrived {j % 4 + 1} days late "
        f"and the box was {'damaged' if (i + j) % 2 else 'wet'}."
        for j in range(8)
    ]
    return "Read these support tickets and write a one-paragraph summary for the manager.\n" + "\n".join(lines)


def phase(side: str, model: str, prompts: list[int], threads: int) -> dict:
    from compound.models.engines import EngineConfig, open_engine
    from compound.models.llama_cpp import resolve_model_path

    engine, flash_attn = side_config(side)
    config = EngineConfig(path=resolve_model_path(model), n_ctx=2048, n_threads=threads, flash_attn=flash_attn)
    t0 = time.perf_counter()
    eng = open_engine(engine, config)
    load_s = time.perf_counter() - t0
    base = {"max_tokens": 1, "temperature": 0.0, "top_p": 1.0, "stop": None, "seed": None}
    eng.chat({**base, "messages": [{"role": "user", "content": "warm up"}]})
    calls = []
    for i in prompts:
        messages = [{"role": "user", "content": prompt(i)}]
        read = eng.native_request({**base, "messages": messages})
        gen = eng.native_request({**base, "messages": messages, "max_tokens": MAX_TOKENS})
        c0, t0 = time.process_time(), time.perf_counter()
        first = eng.call_native(read)
        t1 = time.perf_counter()
        second = eng.call_native(gen)
        t2, c2 = time.perf_counter(), time.process_time()
        eng.call_native(read)  # the prompt cached again: one token read, one generated: the call's own cost
        t3 = time.perf_counter()
        details = second["usage"].get("prompt_tokens_details") or {}
        calls.append(
            {
                "prompt_tokens": first["usage"]["prompt_tokens"],
                "prompt_s": t1 - t0,
                "completion_tokens": second["usage"]["completion_tokens"],
                "generate_s": t2 - t1,
                "call_s": t3 - t2,
                "cpu_s": c2 - c0,
                "cached_tokens": details.get("cached_tokens"),
            }
        )
    return {"load_s": load_s, "calls": calls}


def install_cost(engine: str) -> float:
    """Seconds to install the engine alone into a fresh folder with an empty pip cache."""
    spec = {"xllamacpp": "xllamacpp==2026.10.11549", "llama-cpp-python": "llama-cpp-python==0.3.36"}[engine]
    env = {
        **os.environ,
        "PIP_CACHE_DIR": tempfile.mkdtemp(),
        "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF",
    }
    with tempfile.TemporaryDirectory() as target:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, spec]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def summarise(engine: str, model: str, phases: list[dict]) -> dict:
    calls = [c for p in phases for c in p["calls"]]
    return {
        "model": model,
        "engine": engine,
        "calls": len(calls),
        "prompt_tok_per_s": sum(c["prompt_tokens"] for c in calls) / sum(c["prompt_s"] for c in calls),
        "gen_tok_per_s": sum(c["completion_tokens"] for c in calls) / sum(c["generate_s"] for c in calls),
        # net of the call's own cost (a cached prompt, one token out): the decoding loop's rate
        "decode_tok_per_s": sum(c["completion_tokens"] - 1 for c in calls)
        / sum(c["generate_s"] - c["call_s"] for c in calls),
        "call_ms": 1000 * statistics.median(c["call_s"] for c in calls),
        "cpu_s_per_call": statistics.mean(c["cpu_s"] for c in calls),
        "prompt_tokens": statistics.mean(c["prompt_tokens"] for c in calls),
        "completion_tokens": statistics.mean(c["completion_tokens"] for c in calls),
        "reused_prefix_tokens": statistics.mean(c["cached_tokens"] or 0 for c in calls),
        "load_s (one-time)": statistics.median(p["load_s"] for p in phases),
    }


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--models", default="smollm2-135m,qwen2.5-coder-1.5b")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--prompts-per-phase", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads on every side")
    p.add_argument(
        "--sides",
        default=",".join(SIDES),
        help="engines compared, ENGINE or ENGINE:fa=on|off (flash attention); the last is the reference",
    )
    p.add_argument("--install-costs", default="", help="also time installing these engines (comma-separated; network)")
    p.add_argument("--phase", help=argparse_hidden())
    p.add_argument("--model", help=argparse_hidden())
    p.add_argument("--prompts", help=argparse_hidden())
    args = parse(p, models="smollm2-135m", rounds=1, prompts_per_phase=1)
    if args.phase:
        print(json.dumps(phase(args.phase, args.model, [int(i) for i in args.prompts.split(",")], args.threads)))
        return
    sides = args.sides.split(",")
    rows, summary = [], {}
    for model in args.models.split(","):
        phases: dict[str, list[dict]] = {s: [] for s in sides}
        for r in range(args.rounds):
            n = args.prompts_per_phase
            prompts = ",".join(str(r * n + i) for i in range(n))
            order = sides[r % len(sides) :] + sides[: r % len(sides)]  # rotate which side goes first
            for side in order:
                phases[side].append(
                    run_phase(__file__, side, "--model", model, "--prompts", prompts, "--threads", str(args.threads))
                )
        measured = {s: summarise(s, model, phases[s]) for s in sides}
        rows += measured.values()
        theirs = measured[sides[-1]]
        for side in sides[:-1]:
            ours, vs = measured[side], f"{side} / {sides[-1]}"
            summary[f"{model}: prompt tok/s ratio {vs}"] = ours["prompt_tok_per_s"] / theirs["prompt_tok_per_s"]
            summary[f"{model}: gen tok/s ratio {vs}"] = ours["gen_tok_per_s"] / theirs["gen_tok_per_s"]
            summary[f"{model}: decode tok/s ratio (net of the call's own cost) {vs}"] = (
                ours["decode_tok_per_s"] / theirs["decode_tok_per_s"]
            )
            summary[f"{model}: CPU-s per call ratio {vs}"] = ours["cpu_s_per_call"] / theirs["cpu_s_per_call"]
    for engine in filter(None, args.install_costs.split(",")):
        summary[f"install {engine} (s, one-time)"] = install_cost(engine)
    title = f"embedded engines: {', '.join(sides)} ({args.threads} threads, greedy)"
    report(title, rows, summary, args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
