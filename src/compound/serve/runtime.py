"""What every served request goes through, whichever route it came by: admission, a run, accounting.

Guarantees:
- Overload is refused, never queued forever: at most ``max_inflight`` requests run at once, at most
  ``max_waiting`` more wait (each at most ``wait_s``), and the rest get 429 with ``Retry-After``.
- Each request is one traced run (``compound.start_run``) under the caller's key budget; what it used is
  persisted against the key and counted in the metrics (requests, latency, tokens, joules, money,
  budget refusals, cache hits).
- Every failure becomes a ``RequestError`` with a status and a reason: refusals 4xx, a model reply that
  never validated 502; nothing else is swallowed.
- ``stream`` runs the same way and yields the run's partials (``program.streaming``) as its model calls
  write them, then its ``Outcome``. It returns once the first partial has come, so a refusal before it
  (budget, overload, bad input) is still an ordinary error response; closing the stream cancels the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from compound.core.budget import using
from compound.core.errors import BackendError, BudgetExceededError, InputError, OutputParseError
from compound.program.streaming import partials
from compound.serve.keys import ApiKey, KeyStore, budget_refusal
from compound.serve.programs import RequestError, Served
from compound.store.traces import span, start_run
from compound.strategies.base import StrategyResult

#: headers of Server-Sent Events responses: they must reach the client as written (no proxy buffering)
NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Gate:
    """Bounded concurrency with a bounded, time-limited wait."""

    def __init__(self, max_inflight: int, max_waiting: int, wait_s: float) -> None:
        self.max_inflight, self.max_waiting, self.wait_s = max_inflight, max_waiting, wait_s
        self.inflight = 0
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None

    def _refuse(self, why: str) -> RequestError:
        return RequestError(429, f"server busy: {why}; retry after 1 s", "overloaded", {"Retry-After": "1"})

    async def __aenter__(self) -> Gate:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_inflight)
        if self._sem.locked():
            if self.waiting >= self.max_waiting:
                raise self._refuse(f"{self.inflight} requests running and {self.waiting} waiting")
            self.waiting += 1
            try:
                await asyncio.wait_for(self._sem.acquire(), self.wait_s)
            except TimeoutError:
                raise self._refuse(f"no slot freed within {self.wait_s:g} s") from None
            finally:
                self.waiting -= 1
        else:
            await self._sem.acquire()
        self.inflight += 1
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.inflight -= 1
        assert self._sem is not None
        self._sem.release()


class Metrics:
    """Prometheus counters and histograms, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("compound_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "compound_request_seconds",
            "request latency",
            ["route"],
            buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.tokens = Counter("compound_tokens", "tokens computed", ["kind"], registry=r)
        self.joules = Counter("compound_energy_joules", "energy used (estimated where not measured)", registry=r)
        self.cost = Counter("compound_cost_usd", "money spent", registry=r)
        self.refusals = Counter("compound_budget_refusals", "requests refused by a key budget", registry=r)
        self.overload = Counter("compound_overload_refusals", "requests refused with 429 for overload", registry=r)
        self.cache_hits = Counter("compound_cache_hits", "model calls served from the cache", registry=r)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


@dataclass
class Outcome:
    value: Any
    info: dict[str, Any]  # the ``compound`` object of a response


def output_of(value: Any) -> Any:
    """The output itself, when ``value`` is a strategy's result with every candidate."""
    return value.value if isinstance(value, StrategyResult) else value


def stage_of(value: Any) -> str | None:
    """The cascade stage that answered, where the output says (a Cascade's output carries ``stage``)."""
    value = output_of(value)
    if isinstance(value, BaseModel):
        value = value.model_dump()
    return value.get("stage") if isinstance(value, dict) else None


class Runtime:
    def __init__(self, keys: KeyStore, gate: Gate, metrics: Metrics) -> None:
        self.keys, self.gate, self.metrics = keys, gate, metrics

    async def execute(self, key: ApiKey, name: str, work: Callable[[], Awaitable[Any]]) -> Outcome:
        """Run ``work`` as one traced run under the key's budget and the concurrency gate. A run cancelled
        (its client went away) is charged to the key for what it had used."""
        r = None
        try:
            async with self.gate:
                budget = self.keys.admit(key)
                with start_run(f"serve {name}", api_key=key.name) as r, using(budget):
                    value = await work()
                    stage = stage_of(value)
                    if stage is not None:
                        r.attrs["stage"] = stage
        except RequestError as e:
            if e.code == "overloaded":
                self.metrics.overload.inc()
            elif e.code == "budget_exceeded":
                self.metrics.refusals.inc()
            raise
        except BudgetExceededError as e:
            self.metrics.refusals.inc()
            raise budget_refusal(f"API key {key.name!r} would exceed its {e.resource} budget for today") from None
        except OutputParseError as e:
            raise RequestError(502, f"the model's reply did not validate: {e.errors}", "invalid_model_output") from None
        except InputError as e:
            raise RequestError(400, str(e), "invalid_request") from None
        except BackendError as e:
            raise RequestError(502, f"the model backend failed: {e}", "backend_error") from None
        except asyncio.CancelledError:
            if r is not None and r.usage is not None:
                self.keys.settle(key, r.usage.physical)
            raise
        assert r.usage is not None
        physical, cached = r.usage.physical, r.usage.cached
        self.keys.settle(key, physical)
        m = self.metrics
        m.tokens.labels("prompt").inc(physical.prompt_tokens)
        m.tokens.labels("completion").inc(physical.completion_tokens)
        m.joules.inc(physical.energy_j)
        m.cost.inc(physical.cost_usd)
        m.cache_hits.inc(cached.calls)
        total = r.usage.total
        info = {
            "run_id": r.id,
            "usage": {
                "calls": total.calls,
                "prompt_tokens": total.prompt_tokens,
                "completion_tokens": total.completion_tokens,
                "total_tokens": total.total_tokens,
                "cpu_s": physical.cpu_s,
                "energy_j": physical.energy_j,
                "energy_estimated": physical.energy_estimated,
                "cost_usd": physical.cost_usd,
                "cached_calls": cached.calls,
            },
            "stage": stage,
        }
        if isinstance(value, StrategyResult):
            info["strategy"] = {
                "name": value.strategy,
                "candidates": len(value.candidates),
                "chosen": value.chosen,
                "passed": value.passed,
                "note": value.note,
            }
        return Outcome(value, info)

    async def stream(self, key: ApiKey, name: str, work: Callable[[], Awaitable[Any]]) -> AsyncGenerator[Any, None]:
        """``execute`` with its partials as they come, then its ``Outcome``; returns after the first item."""
        events = partials(lambda: self.execute(key, name, work))
        try:
            first = await events.__anext__()
        except BaseException:
            await events.aclose()
            raise

        async def chained() -> AsyncGenerator[Any, None]:
            try:
                yield first
                async for item in events:
                    yield item
            finally:
                await events.aclose()

        return chained()


async def run_program(served: Served, inputs: dict[str, Any]) -> Any:
    """The program's output. A program with ``arun`` (a ``Predict``) keeps every candidate in the trace."""
    program = served.program
    arun = getattr(program, "arun", None)
    if arun is None:
        return await program.acall(**inputs)
    with span("step", getattr(program, "step_name", served.name), inputs=inputs) as s:
        result = await arun(**inputs)
        s.attrs["output"] = result.value
        s.attrs["strategy"] = result.to_dict()
    if result.best.error is not None:
        raise OutputParseError(f"{served.name}: {result.note}", result.best.text, result.best.error)
    return result


def timed(metrics: Metrics, route: str) -> Callable[[int], None]:
    """Start timing a request; call the result with the response status when it ends."""
    t0 = time.perf_counter()

    def done(status: int) -> None:
        metrics.latency.labels(route).observe(time.perf_counter() - t0)
        metrics.requests.labels(route, str(status)).inc()

    return done
