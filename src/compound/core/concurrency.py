"""The sync facade over the async core, and bounded fan-out."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when the caller is itself inside an event loop
    (a notebook, say): then it runs on a helper thread that carries the caller's context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
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


async def gather(aws: Iterable[Awaitable[T]], limit: int | None = None) -> list[T]:
    """Await all, at most ``limit`` at a time (default: the settings' max_concurrency), in order.
    The first error cancels the rest and is raised."""
    from compound.core.settings import get_settings

    sem = asyncio.Semaphore(limit or get_settings().max_concurrency)

    async def one(aw: Awaitable[T]) -> T:
        async with sem:
            return await aw

    tasks = [asyncio.ensure_future(one(aw)) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        raise
