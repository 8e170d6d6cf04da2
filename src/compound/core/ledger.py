"""One place that keeps a job's budgets while its calls are made in many processes.

A ``BudgetLedger`` is built from the budgets open where a job starts (their limits, what they used and how
long they have run). Every call made elsewhere on the job's behalf reserves its worst case here before it
starts and settles what it really used when it ends, through a ``SharedBudget`` in the calling process
(``LedgerBudget``), so the guarantees of ``compound.core.budget`` hold across processes: reservations are
atomic, a cap is never exceeded, a call that does not fit only because others are in flight waits for
them, and one that cannot fit at all fails before it starts.

The ledger is plain Python: Ray runs it as an actor (``compound.tables.ray_runner``), and anything that
can call its methods may use it. Its answers are plain tuples, so they cross any process boundary:

- ``try_reserve`` answers ``("ok", ticket)``, ``("wait",)`` or ``("over", resource, limit, held, need)``;
- ``settle(tickets, usage)`` replaces the tickets' reservations with what the call used;
- ``release(owner)`` settles the reservations of a process that was lost, each at its whole worst case
  (a request that got no reply may have been computed, as ``compound.models.base`` charges it);
- ``used()`` says what each budget has used, for the job's driver to add to its own budgets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from compound.core import budget as budgets
from compound.core.errors import BudgetExceededError
from compound.core.usage import Usage

#: how long a call that must wait for reservations in flight sleeps before asking again
POLL_S = 0.02


class BudgetLedger:
    """The budgets ``snapshot()`` describes, kept here; see the module docstring."""

    def __init__(self, snapshots: list[dict[str, Any]]) -> None:
        self.budgets: tuple[budgets.Budget, ...] = tuple(_rebuilt(s) for s in snapshots)
        self.open: dict[int, tuple[str, list, int, float]] = {}  # ticket -> (owner, plan, tokens, cost)
        self.next_ticket = 0

    def try_reserve(self, tokens: int, cost_usd: float, can_wait: bool, owner: str) -> tuple:
        with budgets._COND:
            try:
                plan = budgets.try_reserve(self.budgets, tokens, cost_usd, can_wait)
            except BudgetExceededError as e:
                return ("over", e.resource, e.limit, e.used, e.requested)
        if plan is None:
            return ("wait",)
        self.next_ticket += 1
        self.open[self.next_ticket] = (owner, plan, tokens, cost_usd)
        return ("ok", self.next_ticket)

    def settle(self, tickets: list[int], usage: dict[str, Any] | None) -> None:
        plan = [item for t in tickets if t in self.open for item in self.open.pop(t)[1]]
        budgets.settle(plan, None if usage is None else Usage.from_dict(usage))

    def release(self, owner: str) -> int:
        """Settle every reservation ``owner`` still holds at its worst case; returns how many."""
        lost = [t for t, (o, *_) in self.open.items() if o == owner]
        for t in lost:
            _, plan, tokens, cost = self.open.pop(t)
            budgets.settle(plan, Usage(calls=1, prompt_tokens=tokens, cost_usd=cost))
        return len(lost)

    def used(self) -> list[dict[str, Any]]:
        return [b.used.to_dict() for b in self.budgets]


def snapshot(b: budgets.Budget) -> dict[str, Any]:
    """What a ledger needs to keep ``b``: its limits, what it used, how long it has run."""
    return {"limits": dict(b.limits), "used": b.used.to_dict(), "elapsed_s": time.monotonic() - b.started}


def _rebuilt(s: dict[str, Any]) -> budgets.Budget:
    b = budgets.Budget(threads=False, **s["limits"])
    b.used = Usage.from_dict(s["used"])
    b.started = time.monotonic() - s["elapsed_s"]
    return b


def add_used(b: budgets.Budget, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Add to ``b`` what its ledger copy used between ``before`` and ``after`` (the job's calls elsewhere)."""
    delta = Usage.from_dict({k: after[k] - before[k] for k in after if isinstance(after[k], (int, float))})
    delta.energy_estimated = bool(after.get("energy_estimated"))
    with budgets._COND:
        b.used.add(delta)


class LedgerBudget(budgets.SharedBudget):
    """A ``SharedBudget`` that reserves in a ledger through ``ask(method, *args)``: a function that runs
    the ledger's method and returns its answer (sync), and ``aask`` the same for coroutines. ``owner``
    names this process, so a ledger can settle its reservations if the process is lost."""

    def __init__(
        self,
        ask: Callable[..., Any],
        aask: Callable[..., Any],
        tell: Callable[..., None],
        owner: str,
    ) -> None:
        super().__init__()
        self._ask, self._aask, self._tell, self.owner = ask, aask, tell, owner

    def _reserve_there(self, tokens: int, cost_usd: float, can_wait: bool) -> budgets._Reservation:
        while True:
            answer = self._ask("try_reserve", tokens, cost_usd, can_wait, self.owner)
            if answer[0] != "wait":
                return _granted(answer, tokens, cost_usd)
            time.sleep(POLL_S)

    async def _areserve_there(self, tokens: int, cost_usd: float) -> budgets._Reservation:
        while True:
            answer = await self._aask("try_reserve", tokens, cost_usd, True, self.owner)
            if answer[0] != "wait":
                return _granted(answer, tokens, cost_usd)
            await asyncio.sleep(POLL_S)

    def _settle_there(self, reservations: list[budgets._Reservation], usage: Usage | None) -> None:
        self._tell("settle", [r.ticket for r in reservations], None if usage is None else usage.to_dict())


def _granted(answer: tuple, tokens: int, cost_usd: float) -> budgets._Reservation:
    if answer[0] == "over":
        _, resource, limit, held, need = answer
        raise BudgetExceededError(resource, limit, held, need, [])
    return budgets._Reservation(tokens, cost_usd, 0.0, answer[1])
