"""compound serve's overhead: the same scripted backend (50 ms a call) over HTTP, with and without compound.

    python benchmarks/serve.py --json out.json

- ``direct``: a bare FastAPI endpoint on uvicorn that awaits the scripted backend's reply (50 ms) and
  returns an OpenAI-shaped completion: the HTTP stack and the backend, nothing else.
- ``compound``: ``compound serve`` over the same backend: API key check, key budget, concurrency gate,
  a traced run (SQLite), the response cache (every request distinct, so misses), usage accounting,
  metrics and the ``compound`` object in each response.

Each side runs in its own server process; this process is the client (httpx, keep-alive). For each
concurrency level the sides alternate three times and the medians are reported. Keys:
``p50_overhead_pct`` (compound / direct - 1 at p50, per concurrency) and throughput in requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import parse, parser, report

LATENCY_S = 0.05


def direct_app() -> Any:
    from fastapi import FastAPI

    from compound.core.types import Request, as_messages
    from compound.models.scripted import ScriptedBackend

    backend = ScriptedBackend(model="echo", latency_s=LATENCY_S)
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        completion = await backend._agenerate(Request(as_messages(body["messages"])))
        return {
            "id": "chatcmpl-direct",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": completion.text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens},
        }

    return app


def compound_app(secret: str) -> Any:
    from compound.core.settings import get_settings
    from compound.models.scripted import ScriptedBackend
    from compound.serve.app import Limits, create_app
    from compound.serve.keys import KeyStore, new_key

    store = KeyStore.at(get_settings().home / "serve.sqlite")
    store.set_keys([new_key("bench", secret)[0]])
    backend = ScriptedBackend(model="echo", latency_s=LATENCY_S)
    return create_app([], {"echo": backend}, store, Limits(max_inflight=512, max_waiting=512), ui=False)


def serve_side(side: str, port: int, secret: str) -> None:
    import uvicorn

    app = direct_app() if side == "direct" else compound_app(secret)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, secret: str, n: int, concurrency: int, tag: str) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            body = {"model": "echo", "messages": [{"role": "user", "content": f"{tag} request {i}"}]}
            async with sem:
                t0 = time.perf_counter()
                r = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
                latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                raise SystemExit(f"request failed: {r.status_code} {r.text}")

        await asyncio.gather(*(one(i) for i in range(min(20, n))))  # warm-up: connections, imports
        latencies.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(20, 20 + n)))
        wall = time.perf_counter() - t0
    qs = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": qs[49] * 1000, "p99_ms": qs[98] * 1000, "rps": n / wall}


def measure(side: str, concurrency: int, n: int, round_: int) -> dict[str, float]:
    port, secret = free_port(), "sk-bench-secret"
    env = {**os.environ, "COMPOUND_HOME": tempfile.mkdtemp(prefix="compound-bench-")}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", side, "--port", str(port)], env=env)
    try:
        import httpx

        deadline = time.time() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{side} server did not start") from None
                time.sleep(0.1)
        return asyncio.run(load(f"http://127.0.0.1:{port}", secret, n, concurrency, f"{side}-{round_}"))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--serve", choices=["direct", "compound"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--requests", type=int, default=400, help="timed requests per side, round and concurrency")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated concurrency levels")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the two sides per concurrency")
    args = parse(p, requests=8, concurrency="1,4", rounds=1)
    if args.serve:
        serve_side(args.serve, args.port, "sk-bench-secret")
        return
    rows, summary = [], {"backend_latency_ms": LATENCY_S * 1000}
    for c in (int(x) for x in args.concurrency.split(",")):
        n = max(min(50, args.requests), args.requests // 4) if c == 1 else args.requests
        got: dict[str, list[dict[str, float]]] = {"direct": [], "compound": []}
        for round_ in range(args.rounds):
            for side in ("direct", "compound"):
                got[side].append(measure(side, c, n, round_))
        med = {s: {k: statistics.median(r[k] for r in got[s]) for k in got[s][0]} for s in got}
        for side in ("direct", "compound"):
            rows.append({"side": side, "concurrency": c, "requests": n, **med[side]})
        summary[f"p50_overhead_pct_c{c}"] = (med["compound"]["p50_ms"] / med["direct"]["p50_ms"] - 1) * 100
        summary[f"p99_overhead_pct_c{c}"] = (med["compound"]["p99_ms"] / med["direct"]["p99_ms"] - 1) * 100
        summary[f"throughput_ratio_c{c}"] = med["compound"]["rps"] / med["direct"]["rps"]
    report("compound serve against a bare endpoint, scripted backend at 50 ms", rows, summary, args.json)


if __name__ == "__main__":
    main()
