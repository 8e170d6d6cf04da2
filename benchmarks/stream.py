"""Streaming through compound serve against llama.cpp's own server, on the same model, side by side.

    python benchmarks/stream.py --json out.json          # qwen2.5-coder-1.5b, 20 prompts
    python benchmarks/stream.py --smoke                   # smollm2-135m, 2 short prompts (CI)

- ``llama-server``: llama.cpp's HTTP server (the xllamacpp wheel's, ``models.local_server``), streaming
  ``/v1/chat/completions`` itself.
- ``compound``: ``compound serve`` with the same model embedded (``-m``), streaming through
  ``Backend.astream`` (key check, gate, traced run, usage, the ``compound`` object in the last chunk).
  Its response cache is off, so every reply is computed.

Both get the same threads and context, one server at a time (the other is stopped), the same prompts in
the same order, each request sent by the official ``openai`` client with ``stream=True``. Per request:
time to the first content token from the request (``ttft``), decode rate (tokens after the first over
the time after the first, ``tok_s``) and the whole time. One-time costs (process start, model load, a
warm-up request) are reported apart. Then, on compound, each prompt is asked again without streaming
with the same seed: ``same_text`` counts replies equal to the streamed text.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import parser, report, wait_for_server

PROMPTS = [
    "Write two sentences about why the sea is salty.",
    "Give three tips for a first job interview.",
    "Explain what a hash table is to a ten-year-old.",
    "Write a short thank-you note to a neighbour who watered my plants.",
    "What should I pack for a weekend of hiking in autumn?",
    "Describe a lighthouse at night in three sentences.",
    "Summarize the plot of Little Red Riding Hood in two sentences.",
    "Write a polite email asking to move a meeting to Thursday.",
    "List four ways to save energy at home.",
    "Explain recursion with a simple example in Python.",
    "Write a haiku about trains.",
    "Why do leaves change colour in autumn?",
    "Give a short pep talk to someone starting to learn the piano.",
    "What is the difference between weather and climate?",
    "Write a product description for a blue ceramic mug.",
    "Explain what an API is in plain words.",
    "Suggest a name for a bakery and explain why in one sentence.",
    "Write a limerick about a cat who loves boxes.",
    "How do I make a simple vinaigrette?",
    "Describe the smell of rain to someone who has never smelled it.",
]


def serve_compound(model: str, port: int, threads: int, n_ctx: int) -> None:
    import uvicorn

    import compound
    from compound.models.llama_cpp import LlamaCppBackend
    from compound.serve.app import create_app

    compound.configure(cache=False)
    backend = LlamaCppBackend(model, n_threads=threads, n_ctx=n_ctx)
    backend.engine  # noqa: B018  (load before the server says it is ready)
    uvicorn.run(create_app([], {model: backend}, ui=False), host="127.0.0.1", port=port, log_level="warning")


def one(client: Any, model: str, prompt: str, max_tokens: int, seed: int, stream: bool) -> dict[str, Any]:
    msgs = [{"role": "user", "content": prompt}]
    params = {"model": model, "messages": msgs, "max_tokens": max_tokens, "temperature": 0.7, "seed": seed}
    t0 = time.perf_counter()
    if not stream:
        r = client.chat.completions.create(**params)
        return {"text": r.choices[0].message.content, "total_s": time.perf_counter() - t0}
    first = last = None
    parts, usage = [], None
    for chunk in client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
            parts.append(chunk.choices[0].delta.content)
    end = time.perf_counter()
    tokens = usage.completion_tokens if usage is not None else len(parts)
    decode_s = (last or end) - (first or end)
    return {
        "text": "".join(parts),
        "ttft_s": (first or end) - t0,
        "total_s": end - t0,
        "tokens": tokens,
        "tok_s": (tokens - 1) / decode_s if decode_s > 0 and tokens > 1 else float("nan"),
    }


def run_side(side: str, model: str, prompts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import openai

    from compound.models.llama_cpp import resolve_model_path
    from compound.models.local_server import command, free_port

    port = free_port()
    home = tempfile.mkdtemp(prefix="compound-stream-bench-")
    log = open(Path(home) / "server.log", "wb")  # noqa: SIM115 (closed below, after the process)
    t0 = time.perf_counter()
    if side == "llama-server":
        cmd = command("llama-server", resolve_model_path(model), port, threads=args.threads, n_ctx=args.n_ctx)
    else:
        cmd = [sys.executable, __file__, "--serve", model, "--port", str(port)]
        cmd += ["--threads", str(args.threads), "--n-ctx", str(args.n_ctx)]
    proc = subprocess.Popen(
        cmd, env={**os.environ, "COMPOUND_HOME": home}, stdin=subprocess.PIPE, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for_server(f"{url}/models", proc, Path(home) / "server.log")
        client = openai.OpenAI(base_url=url, api_key="not-needed", max_retries=0, timeout=300)
        start_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        one(client, model, "Say hello.", 8, 0, stream=True)  # warm-up: the first request's page faults
        warmup_s = time.perf_counter() - t1
        runs = [one(client, model, p, args.max_tokens, i, stream=True) for i, p in enumerate(prompts)]
        same, differ = None, []
        if side == "compound":
            whole = [one(client, model, p, args.max_tokens, i, stream=False) for i, p in enumerate(prompts)]
            same = sum(w["text"] == r["text"] for w, r in zip(whole, runs, strict=True))
            differ = [
                {"prompt": p, "streamed": r["text"], "whole": w["text"]}
                for p, w, r in zip(prompts, whole, runs, strict=True)
                if w["text"] != r["text"]
            ]
        return {"start_s": start_s, "warmup_s": warmup_s, "runs": runs, "same_text": same, "differ": differ}
    finally:
        proc.kill()
        proc.wait(30)
        log.close()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--prompts", type=int, default=20)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=2048)
    args = p.parse_args()
    if args.serve:
        serve_compound(args.serve, args.port, args.threads, args.n_ctx)
        return
    if args.smoke:
        args.model, args.prompts, args.max_tokens = "smollm2-135m", 2, 16
    prompts = (PROMPTS * (args.prompts // len(PROMPTS) + 1))[: args.prompts]
    results = {side: run_side(side, args.model, prompts, args) for side in ("llama-server", "compound")}
    rows, summary = [], {"model": args.model, "prompts": len(prompts), "max_tokens": args.max_tokens}
    for side, got in results.items():
        runs = got["runs"]
        med = {k: statistics.median(r[k] for r in runs) for k in ("ttft_s", "tok_s", "total_s", "tokens")}
        rows.append(
            {
                "side": side,
                "start_s (once)": got["start_s"],
                "warmup_s (once)": got["warmup_s"],
                "p50 ttft_s": med["ttft_s"],
                "max ttft_s": max(r["ttft_s"] for r in runs),
                "p50 tok/s": med["tok_s"],
                "p50 total_s": med["total_s"],
                "p50 tokens": med["tokens"],
            }
        )
        summary[f"{side}_p50_ttft_s"] = med["ttft_s"]
        summary[f"{side}_p50_tok_s"] = med["tok_s"]
    summary["tok_s_ratio"] = summary["compound_p50_tok_s"] / summary["llama-server_p50_tok_s"]
    summary["ttft_ratio"] = summary["compound_p50_ttft_s"] / summary["llama-server_p50_ttft_s"]
    summary["compound_same_text_as_unstreamed"] = f"{results['compound']['same_text']}/{len(prompts)}"
    report(
        f"streaming {args.model}: compound serve against llama-server ({args.threads} threads)",
        rows,
        summary,
        args.json,
    )
    if args.json is not None:  # the replies that differ, for a person to read
        data = json.loads(args.json.read_text())
        data["streamed_whole_differ"] = results["compound"]["differ"]
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
