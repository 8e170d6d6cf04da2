"""compound serve under load on loopback: 250 concurrent requests against a scripted backend at 50 ms.

Nothing is lost (every request gets its own answer or a clean refusal), no key budget is exceeded, p50
and p99 are reported, and overload gets 429 with Retry-After quickly instead of hanging."""

import asyncio
import statistics
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
import httpx  # noqa: E402

from compound.models.scripted import ScriptedBackend  # noqa: E402
from compound.serve.app import Limits, create_app  # noqa: E402
from compound.serve.background import BackgroundServer  # noqa: E402
from compound.serve.keys import KeyStore, new_key  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
from serve_programs import make_programs  # noqa: E402

N = 250


async def fire(url: str, secret: str, n: int) -> list[tuple[int, str, httpx.Response, float]]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one(i: int):
            text = f"request {i}"
            body = {"model": "echo", "messages": [{"role": "user", "content": text}]}
            t0 = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
            return i, text, r, time.perf_counter() - t0

        return await asyncio.gather(*(one(i) for i in range(n)))


def percentile(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] if len(xs) > 1 else xs[0]


def test_250_concurrent_requests_nothing_lost_budget_held(isolated_home):
    store = KeyStore(isolated_home / "serve.sqlite")
    key, secret = new_key("load", calls=230)
    store.set_keys([key])
    echo = ScriptedBackend(model="echo", latency_s=0.05)
    app = create_app(make_programs(), {"echo": echo}, store, Limits(max_inflight=256, max_waiting=512), ui=False)
    with BackgroundServer(app, backlog=1024) as url:
        t0 = time.perf_counter()
        results = asyncio.run(fire(url, secret, N))
        wall = time.perf_counter() - t0
    ok = [(i, text, r, s) for i, text, r, s in results if r.status_code == 200]
    refused = [r for _, _, r, _ in results if r.status_code != 200]
    assert len(results) == N
    assert len(ok) == 230  # exactly the key's daily calls, never more
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    assert all(int(r.headers["Retry-After"]) > 0 for r in refused)
    for _, text, r, _ in ok:  # every answer is its own request's
        assert r.json()["choices"][0]["message"]["content"] == text
    assert len({r.json()["compound"]["run_id"] for _, _, r, _ in ok}) == 230
    assert store.usage_today("load")["calls"] == 230
    lat = [s for *_, s in ok]
    print(
        f"\n{N} concurrent: {len(ok)} ok, {len(refused)} refused by budget in {wall:.2f} s; "
        f"p50 {percentile(lat, 50) * 1000:.0f} ms, p99 {percentile(lat, 99) * 1000:.0f} ms"
    )


def test_overload_gets_429_with_retry_after_not_a_hang(isolated_home):
    store = KeyStore(isolated_home / "serve.sqlite")
    key, secret = new_key("load")
    store.set_keys([key])
    echo = ScriptedBackend(model="echo", latency_s=0.05)
    app = create_app([], {"echo": echo}, store, Limits(max_inflight=8, max_waiting=16, wait_s=0.3), ui=False)
    with BackgroundServer(app, backlog=1024) as url:
        t0 = time.perf_counter()
        results = asyncio.run(fire(url, secret, N))
        wall = time.perf_counter() - t0
        metrics = httpx.get(f"{url}/metrics").text
    codes = [r.status_code for _, _, r, _ in results]
    busy = [r for _, _, r, _ in results if r.status_code == 429]
    assert set(codes) == {200, 429}
    assert len(busy) > N // 2 and all(
        r.headers["Retry-After"] == "1" and r.json()["error"]["code"] == "overloaded" for r in busy
    )
    for _, text, r, _ in results:
        if r.status_code == 200:
            assert r.json()["choices"][0]["message"]["content"] == text
    assert wall < 30
    assert f"compound_overload_refusals_total {float(len(busy))}" in metrics
    print(f"\noverload: {codes.count(200)} served, {len(busy)} refused with 429 in {wall:.2f} s")
