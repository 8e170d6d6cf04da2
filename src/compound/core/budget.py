"""Hard budgets on tokens, money, wall time, energy and calls.

A call *reserves* its worst case before it starts: its prompt tokens plus its whole ``max_tokens``, and
the money those would cost. The reservation is atomic across every budget active in the context, so many
calls in flight can never push a token, money or call cap past its limit. When the call ends, the
reservation is replaced by what the call really used.

Wall time and energy cannot be known before a call ends. They are checked before each call starts:
time against the clock, energy against what was used plus the reservation's estimate at the budget's
observed joules per token. A call already running is not interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from compound.core.errors import BudgetExceededError
from compound.core.usage import Usage

_LOCK = threading.Lock()  # one lock for all reservations: they take microseconds


@dataclass(slots=True)
class _Reservation:
    tokens: int
    cost_usd: float
    energy_j: float


class Budget:
    """Limits for a block of work. ``None`` means no limit on that resource."""

    def __init__(
        self,
        *,
        tokens: int | None = None,
        cost_usd: float | None = None,
        wall_s: float | None = None,
        energy_j: float | None = None,
        calls: int | None = None,
    ) -> None:
        self.limits = {"tokens": tokens, "cost_usd": cost_usd, "wall_s": wall_s, "energy_j": energy_j, "calls": calls}
        self.used = Usage()
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.reserved_energy = 0.0
        self.reserved_calls = 0
        self.started = time.monotonic()
        self.results: list[Any] = []

    # --- called by the backend base class only -------------------------------------------------
    def _check(self, tokens: int, cost: float, energy: float) -> None:
        lim = self.limits
        checks = (
            ("calls", self.used.calls + self.reserved_calls, 1),
            ("tokens", self.used.total_tokens + self.reserved_tokens, tokens),
            ("cost_usd", self.used.cost_usd + self.reserved_cost, cost),
            ("energy_j", self.used.energy_j + self.reserved_energy, energy),
        )
        for name, used, need in checks:
            if lim[name] is not None and used + need > lim[name]:
                raise BudgetExceededError(name, lim[name], used, need, list(self.results))
        if lim["wall_s"] is not None:
            elapsed = time.monotonic() - self.started
            if elapsed >= lim["wall_s"]:
                raise BudgetExceededError("wall_s", lim["wall_s"], elapsed, 0.0, list(self.results))

    def _joules_per_token(self) -> float:
        return self.used.energy_j / self.used.total_tokens if self.used.total_tokens else 0.0

    def remaining_s(self) -> float | None:
        if self.limits["wall_s"] is None:
            return None
        return max(0.0, self.limits["wall_s"] - (time.monotonic() - self.started))

    def snapshot(self) -> dict[str, Any]:
        return {"limits": dict(self.limits), "used": self.used.to_dict(), "elapsed_s": time.monotonic() - self.started}


_BUDGETS: ContextVar[tuple[Budget, ...]] = ContextVar("compound_budgets", default=())


@contextmanager
def budget(
    *,
    tokens: int | None = None,
    cost_usd: float | None = None,
    wall_s: float | None = None,
    energy_j: float | None = None,
    calls: int | None = None,
) -> Iterator[Budget]:
    """Enforce limits on every call made inside the block. Nested budgets all apply."""
    with using(Budget(tokens=tokens, cost_usd=cost_usd, wall_s=wall_s, energy_j=energy_j, calls=calls)) as b:
        yield b


@contextmanager
def using(b: Budget) -> Iterator[Budget]:
    """Enforce an existing ``Budget`` inside the block. One budget may be shared by many blocks at once
    (a server's per-key daily budget): reservations stay atomic across all of them."""
    token = _BUDGETS.set(_BUDGETS.get() + (b,))
    try:
        yield b
    finally:
        _BUDGETS.reset(token)


def active_budgets() -> tuple[Budget, ...]:
    return _BUDGETS.get()


def reserve(tokens: int, cost_usd: float) -> list[tuple[Budget, _Reservation]]:
    """Reserve a call's worst case in every active budget, or raise without reserving anything."""
    budgets = _BUDGETS.get()
    if not budgets:
        return []
    with _LOCK:
        plan = [(b, _Reservation(tokens, cost_usd, tokens * b._joules_per_token())) for b in budgets]
        for b, r in plan:
            b._check(r.tokens, r.cost_usd, r.energy_j)
        for b, r in plan:
            b.reserved_tokens += r.tokens
            b.reserved_cost += r.cost_usd
            b.reserved_energy += r.energy_j
            b.reserved_calls += 1
    return plan


def settle(plan: list[tuple[Budget, _Reservation]], usage: Usage | None, result: Any = None) -> None:
    """Replace reservations with what the call really used (``None`` if it failed and used nothing)."""
    if not plan:
        return
    with _LOCK:
        for b, r in plan:
            b.reserved_tokens -= r.tokens
            b.reserved_cost -= r.cost_usd
            b.reserved_energy -= r.energy_j
            b.reserved_calls -= 1
            if usage is not None:
                b.used.add(usage)
            if result is not None:
                b.results.append(result)
