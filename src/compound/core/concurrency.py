"""The sync facade over the async core, bounded fan-out, and per-loop call slots."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Coroutine, Generator, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class _Boxed:
    """A coroutine's result, kept where ``repr`` does not reach it."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


async def _boxed(coro: Coroutine[Any, Any, T]) -> _Boxed:
    return _Boxed(await coro)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when the caller is itself inside an event loop
    (a notebook, say): then it runs on a helper thread that carries the caller's context.

    The result comes back boxed: on the main thread ``asyncio.run`` restores its Ctrl-C handler through
    ``signal``, which formats the handler's ``repr`` and with it the finished task's result (a whole
    ``TableRun``, frame included, twice per call)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_boxed(coro)).value
    result: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            result["value"] = ctx.run(asyncio.run, coro)
        except BaseException as e:  # re-raised in the caller
            result["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def iterate_sync(agen: AsyncGenerator[T, None]) -> Generator[T, None, None]:
    """Iterate an async generator from sync code, on an event loop of its own in this thread; closing
    the sync generator closes the async one (its cleanup runs). Inside a running event loop, use the
    async generator directly."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("iterating a stream synchronously inside a running event loop: use its async form")
    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    item = runner.run(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        finally:
            runner.run(agen.aclose())


async def gather(aws: Iterable[Awaitable[T]], limit: int | None = None) -> list[T]:
    """Await all, at most ``limit`` at a time (default: the settings' max_concurrency), in order.
    The first error cancels the rest and is raised."""
    from compound.core.settings import get_settings

    sem = asyncio.Semaphore(limit or get_settings().max_concurrency)

    async def one(aw: Awaitable[T]) -> T:
        try:
            async with sem:
                return await aw
        finally:  # cancelled while waiting for a slot: close the coroutine it never started
            if inspect.iscoroutine(aw) and inspect.getcoroutinestate(aw) == inspect.CORO_CREATED:
                aw.close()

    tasks = [asyncio.ensure_future(one(aw)) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        raise


class Slots:
    """At most ``limit`` holders at once on one event loop, with the limit read at each ``hold``, so a
    later ``configure(max_concurrency=...)`` takes effect for the next calls. First come, first served:
    a freed slot is handed to the longest waiter; no waiting at all while a slot is free."""

    def __init__(self) -> None:
        self.active = 0
        self.limit = 1
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def hold(self, limit: int) -> AsyncIterator[None]:
        self.limit = limit
        if self.active < limit and not self._waiters:
            self.active += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._wake()  # a raised limit may have freed slots
            try:
                await waiter  # the waker counts this holder in before waking it
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.active -= 1  # handed a slot, but leaving: pass it on
                    self._wake()
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        try:
            yield
        finally:
            self.active -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)
