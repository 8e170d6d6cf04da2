"""Hard budgets on tokens, money, wall time, energy and calls.

A call *reserves* its worst case before it starts (a typed call's repair is a call of its own; a retry
or a refused constraint sent again reserves one more call, and its tokens again if the request before
it got no reply, at once or fails: it never waits, since it already holds a reservation): its prompt tokens plus its whole ``max_tokens``, and
the money those would cost. The reservation is atomic across every budget that applies to the call, so
many calls in flight can never push a token, money or call cap past its limit. When the call ends, the
reservation is replaced by what the call really used, and its result is kept on the budget.

A call that does not fit *now* only because other calls hold reservations **waits** for them to settle
(their unused reservation comes back); it fails with ``BudgetExceededError`` only when the cap cannot be
met even with nothing in flight. So a cap below the concurrency still makes progress, and work already
paid for is never cancelled by a budget. (A sync call made on a thread that runs an event loop cannot
wait, since the calls it would wait for may need that loop: it fails at once instead.)

Which calls a budget counts:
- every call made in the block's context: the block itself, asyncio tasks started in it, and threads
  that carry the context (``asyncio.to_thread``, ``contextvars.copy_context().run``, compound's workers);
- with ``threads=True`` (the default), also every call from a context that holds no budget at all
  (a plain ``threading.Thread``, ``ThreadPoolExecutor.submit``, ``loop.run_in_executor``) while the block
  is open, and budgets opened in such a context nest inside it. A call like that cannot be traced back
  to the block that started its thread, so it is charged to every such budget open in the process: a
  budget may count calls it did not start, never miss one. Servers that run budgeted and unbudgeted
  work side by side pass ``threads=False``, and the budget then holds for its context only.

Wall time and energy cannot be known before a call ends. They are checked before each call starts:
time against the clock, energy against what was used plus the reservation's estimate at the budget's
observed joules per token. A model call already running is not interrupted (it is paid for). A tool
call (``Tool.acall``) and a ``ToolAgent`` step are: at the wall-time deadline the tool is stopped (cancelled,
or its process killed) and ``BudgetExceededError`` is raised (``wall_deadline``).

A budget may also be kept by another process (``SharedBudget``): the workers of a Ray job reserve each
call in the one ledger that holds the driver's budgets (``compound.core.ledger``), so a cap holds across
processes with the same guarantees. Such a call reserves here first, then there; it waits there as it
would here, and what it used is settled in both.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from compound.core.errors import BudgetExceededError, InputError
from compound.core.usage import Usage
from compound.core.validate import check_number

#: one lock for all reservations (they take microseconds), notified whenever a reservation settles
_COND = threading.Condition()
#: longest single wait before re-checking (the wall clock, a waiter woken on another loop)
_RECHECK_S = 0.25
_INTEGER_LIMITS = ("tokens", "calls")


def _limit(name: str, value: Any) -> float | int | None:
    """A limit must be None (no limit) or a finite number >= 0; counts must be whole numbers."""
    if value is None:
        return None
    if name in _INTEGER_LIMITS and isinstance(value, float):
        raise InputError(f"budget limit {name}={value!r} must be a whole number >= 0, or None for no limit")
    return check_number(f"budget limit {name}", value, at_least=0, integer=name in _INTEGER_LIMITS)


@dataclass(slots=True)
class _Reservation:
    tokens: int
    cost_usd: float
    energy_j: float
    ticket: Any = None  # a shared budget's receipt for this reservation, kept where the budget is


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
        threads: bool = True,
    ) -> None:
        given = {"tokens": tokens, "cost_usd": cost_usd, "wall_s": wall_s, "energy_j": energy_j, "calls": calls}
        self.limits = {name: _limit(name, value) for name, value in given.items()}
        self.threads = bool(threads)
        self.used = Usage()
        self.reserved_tokens = 0
        self.reserved_cost = 0.0
        self.reserved_energy = 0.0
        self.reserved_calls = 0
        self.started = time.monotonic()
        self.results: list[Any] = []

    # --- called under _COND by reserve only ---------------------------------------------------------
    def _over(self, r: _Reservation, in_flight: bool) -> BudgetExceededError | None:
        """The error this reservation would hit, counting reservations in flight or only settled use."""
        lim = self.limits
        if lim["wall_s"] is not None:
            elapsed = time.monotonic() - self.started
            if elapsed >= lim["wall_s"]:
                return BudgetExceededError("wall_s", lim["wall_s"], elapsed, 0.0, list(self.results))
        checks = (
            ("calls", self.used.calls, self.reserved_calls, 1),
            ("tokens", self.used.total_tokens, self.reserved_tokens, r.tokens),
            ("cost_usd", self.used.cost_usd, self.reserved_cost, r.cost_usd),
            ("energy_j", self.used.energy_j, self.reserved_energy, r.energy_j),
        )
        for name, used, reserved, need in checks:
            held = used + reserved if in_flight else used
            limit = lim[name]
            if limit is not None and held + need > limit:
                return BudgetExceededError(name, limit, held, need, list(self.results))
        return None

    def _joules_per_token(self) -> float:
        return self.used.energy_j / self.used.total_tokens if self.used.total_tokens else 0.0

    def remaining_s(self) -> float | None:
        if self.limits["wall_s"] is None:
            return None
        return max(0.0, self.limits["wall_s"] - (time.monotonic() - self.started))

    def snapshot(self) -> dict[str, Any]:
        return {"limits": dict(self.limits), "used": self.used.to_dict(), "elapsed_s": time.monotonic() - self.started}


def wall_deadline() -> tuple[float, Budget] | None:
    """The nearest wall-time deadline of the budgets that apply here: (seconds left, its budget), or None."""
    nearest: tuple[float, Budget] | None = None
    for b in active_budgets():
        left = b.remaining_s()
        if left is not None and (nearest is None or left < nearest[0]):
            nearest = (left, b)
    return nearest


def wall_exceeded(b: Budget) -> BudgetExceededError:
    """The error of a budget whose wall time ran out while work was running."""
    return BudgetExceededError("wall_s", b.limits["wall_s"] or 0.0, time.monotonic() - b.started, 0.0, list(b.results))


async def within_wall(work: Any) -> Any:
    """Await ``work`` (a coroutine), cancelled at the nearest wall-time deadline with ``BudgetExceededError``."""
    nearest = wall_deadline()
    if nearest is None:
        return await work
    try:
        return await asyncio.wait_for(work, nearest[0])
    except TimeoutError:
        if nearest[1].remaining_s() == 0.0:
            raise wall_exceeded(nearest[1]) from None
        raise


class SharedBudget(Budget):
    """A budget kept by another process and reserved there, call by call (a Ray job's workers share the
    driver's budgets through one). It holds no limits here: subclasses implement ``_reserve_there``
    (sync and async: wait there as ``reserve`` waits here, or raise ``BudgetExceededError``; return the
    ``_Reservation`` with its ticket) and ``_settle_there`` (the tickets of one call and what it used)."""

    def __init__(self) -> None:
        super().__init__(threads=False)

    def _reserve_there(self, tokens: int, cost_usd: float, can_wait: bool) -> _Reservation:
        raise NotImplementedError

    async def _areserve_there(self, tokens: int, cost_usd: float) -> _Reservation:
        raise NotImplementedError

    def _settle_there(self, reservations: list[_Reservation], usage: Usage | None) -> None:
        raise NotImplementedError


def _split(budgets: tuple[Budget, ...]) -> tuple[tuple[Budget, ...], tuple[SharedBudget, ...]]:
    """The budgets kept in this process, and those kept elsewhere."""
    return (
        tuple(b for b in budgets if not isinstance(b, SharedBudget)),
        tuple(b for b in budgets if isinstance(b, SharedBudget)),
    )


_BUDGETS: ContextVar[tuple[Budget, ...]] = ContextVar("compound_budgets", default=())
_OPEN: list[Budget] = []  # budgets with threads=True whose block is open, in any thread (guarded by _COND)


@contextmanager
def budget(*, threads: bool = True, **limits: Any) -> Iterator[Budget]:
    """Enforce limits on every call made inside the block (see the module docstring for which calls
    count): ``tokens``, ``cost_usd``, ``wall_s``, ``energy_j`` and ``calls``, as ``Budget`` takes them.
    Nested budgets all apply. Limits must be finite and >= 0; ``None`` means no limit."""
    b = Budget(threads=threads, **limits)
    with using(b):  # in this context first, then open to other threads (never counted twice)
        if b.threads:
            with _COND:
                _OPEN.append(b)
        try:
            yield b
        finally:
            if b.threads:
                with _COND:
                    _OPEN.remove(b)


@contextmanager
def using(b: Budget) -> Iterator[Budget]:
    """Enforce an existing ``Budget`` in this context only (whatever its ``threads``). One budget may be
    used by many blocks at once (a server's per-key daily budget): reservations stay atomic across them."""
    token = _BUDGETS.set(active_budgets() + (b,))
    try:
        yield b
    finally:
        _BUDGETS.reset(token)


def active_budgets() -> tuple[Budget, ...]:
    """The budgets a call made here is charged to: this context's, or, in a context that holds none,
    every ``threads=True`` budget open in the process."""
    own = _BUDGETS.get()
    if own:
        return own
    with _COND:
        return tuple(_OPEN)


def try_reserve(budgets: tuple[Budget, ...], tokens: int, cost_usd: float, can_wait: bool = True) -> list | None:
    """Under _COND (a ledger holds it for the budgets it keeps): reserve in every budget and return the plan; None when the call must wait for
    reservations in flight; raise when it cannot fit even after they settle (or cannot wait)."""
    plan = [(b, _Reservation(tokens, cost_usd, tokens * b._joules_per_token())) for b in budgets]
    waiting_on: BudgetExceededError | None = None
    for b, r in plan:
        error = b._over(r, in_flight=True)
        if error is None:
            continue
        if error.resource == "wall_s" or b.reserved_calls == 0 or b._over(r, in_flight=False) is not None:
            raise error
        waiting_on = error
    if waiting_on is not None:
        if not can_wait:
            raise waiting_on
        return None
    for b, r in plan:
        b.reserved_tokens += r.tokens
        b.reserved_cost += r.cost_usd
        b.reserved_energy += r.energy_j
        b.reserved_calls += 1
    return plan


def _wait_s(budgets: tuple[Budget, ...]) -> float:
    left = [s for s in (b.remaining_s() for b in budgets) if s is not None]
    return max(0.001, min([_RECHECK_S, *left]))


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def reserve(tokens: int, cost_usd: float, *, wait: bool = True) -> list[tuple[Budget, _Reservation]]:
    """Reserve a call's worst case in every budget that applies, waiting while reservations in flight
    stand in the way; raise ``BudgetExceededError`` without reserving anything when it cannot fit.
    With ``wait=False`` it fits now or raises: a call that already holds a reservation never waits
    for more (calls in flight that all held one and waited for another would wait for ever)."""
    budgets = active_budgets()
    if not budgets:
        return []
    can_wait = wait and not _in_event_loop()
    here, there = _split(budgets)
    plan: list[tuple[Budget, _Reservation]] = []
    if here:
        with _COND:
            while True:
                plan = try_reserve(here, tokens, cost_usd, can_wait) or []
                if plan:
                    break
                _COND.wait(_wait_s(here))
    try:
        for b in there:
            plan.append((b, b._reserve_there(tokens, cost_usd, can_wait)))
    except BaseException:
        settle(plan, None)
        raise
    return plan


_async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []


async def areserve(tokens: int, cost_usd: float) -> list[tuple[Budget, _Reservation]]:
    """``reserve`` for coroutines: waits on the event loop, so the calls it waits for keep running."""
    budgets = active_budgets()
    if not budgets:
        return []
    here, there = _split(budgets)
    plan: list[tuple[Budget, _Reservation]] = []
    loop = asyncio.get_running_loop()
    while here:
        with _COND:
            plan = try_reserve(here, tokens, cost_usd) or []
            if plan:
                break
            woken = loop.create_future()
            _async_waiters.append((loop, woken))
        await asyncio.wait({woken}, timeout=_wait_s(here))
    try:
        for b in there:
            plan.append((b, await b._areserve_there(tokens, cost_usd)))
    except BaseException:
        settle(plan, None)
        raise
    return plan


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def settle(plan: list[tuple[Budget, _Reservation]], usage: Usage | None, result: Any = None) -> None:
    """Replace a call's reservations (one per request it sent, in every budget) with what it really
    used (``None`` if it failed and used nothing), keep its result once per budget, and wake the calls
    waiting for room."""
    if not plan:  # no budget was open: every call made outside one comes here
        return
    shared = [(b, r) for b, r in plan if isinstance(b, SharedBudget)]
    for b in dict.fromkeys(b for b, _ in shared):
        b._settle_there([r for s, r in shared if s is b], usage)
    plan = [(b, r) for b, r in plan if not isinstance(b, SharedBudget)]
    if not plan:
        return
    with _COND:
        for b, r in plan:
            b.reserved_tokens -= r.tokens
            b.reserved_cost -= r.cost_usd
            b.reserved_energy -= r.energy_j
            b.reserved_calls -= 1
        for b in dict.fromkeys(b for b, _ in plan):  # a call that sent several requests holds several
            if usage is not None:
                b.used.add(usage)
            if result is not None:
                b.results.append(result)
        waiters = list(_async_waiters)
        _async_waiters.clear()
        _COND.notify_all()
    for loop, fut in waiters:
        try:
            loop.call_soon_threadsafe(_wake, fut)
        except RuntimeError:  # that loop has closed; its waiter is gone with it
            pass
