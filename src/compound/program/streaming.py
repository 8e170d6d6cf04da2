"""A step's reply as it is written: what ``Predict.stream`` and ``Predict.astream`` yield.

Guarantees:

- A streamed step runs exactly as a whole one (its strategy, requirements, repairs, cache, budgets and
  trace); only its model calls go through ``Backend.astream`` instead of ``agenerate``, so each call's
  text arrives as ``Partial`` events while it is generated.
- A ``Partial`` names its candidate (``candidate``, 0 for the greedy one) and the call within it
  (``attempt``: a parse repair or a strategy's repair starts a new text), and carries the new text
  (``delta``), the call's text so far (``text``) and ``value``: that text parsed leniently (a partial
  JSON object as a dict, not validated; ``None`` before anything parses).
- When the iteration ends, ``result`` is the step's ``StrategyResult`` and ``value`` its validated value;
  a step whose candidates all failed raises ``OutputParseError`` at the end, as calling it does.
- Closing the stream (or dropping it) cancels the step: the call in flight stops at its next token, and
  nothing it had half written is cached.
- A step may name a runaway test (``Predict.runaway``, e.g. ``repeats``): a streamed call whose text it
  flags is stopped there (cancelled: charged what it generated, not cached) and its text so far becomes
  the reply, with finish reason ``repetition``, which then fails to parse or to meet the requirements
  like any bad reply (a strategy may repair it). Whole calls are not watched.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from compound.core.concurrency import iterate_sync
from compound.core.types import Generation, Request
from compound.core.usage import Usage
from compound.models.base import Backend
from compound.models.typed import OutputSpec


@dataclass(frozen=True)
class Partial:
    """One delta of one model call of a streamed step."""

    candidate: int
    attempt: int
    delta: str
    text: str
    value: Any


#: where a streamed step's calls send their partials (set by ``Predict.astream`` for its task only)
SINK: ContextVar[Callable[[Partial], None] | None] = ContextVar("compound_stream_sink", default=None)


_REPEAT = re.compile(r"(.{6,80}?)\1{3,}$", re.S)


def repeats(text: str) -> bool:
    """Whether the text ends in a run of the same 6 to 80 characters four times or more (a model looping)."""
    return _REPEAT.search(text[-600:]) is not None


def streamed_calls(
    backend: Backend,
    spec: OutputSpec | None,
    candidate: int,
    sink: Callable[[Partial], None],
    runaway: Callable[[str], bool] | None = None,
) -> Callable[[Request], Awaitable[Generation]]:
    """A step's call handler (in place of ``backend.agenerate``) that streams each call into ``sink``
    (with partial values parsed by ``spec``; none without one), stopping a call whose text ``runaway`` flags."""
    attempts = itertools.count()

    async def call(request: Request) -> Generation:
        attempt, text = next(attempts), ""
        async with backend.astream(request) as stream:
            async for delta in stream:
                text += delta
                sink(Partial(candidate, attempt, delta, text, None if spec is None else spec.partial(text)))
                if runaway is not None and runaway(text):
                    break  # closing the stream (leaving the block) cancels the call
        if stream.generation is None:  # stopped as a runaway: its usage was charged by the cancellation
            return Generation(text, backend.model_id, Usage(), finish_reason="repetition")
        return stream.generation

    return call


_END: Any = object()


async def partials(run: Callable[[], Awaitable[Any]]) -> AsyncGenerator[Any, None]:
    """Run ``run()`` (a step's ``aresult``) as a task with a sink: yield its partials, then its result."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    token = SINK.set(queue.put_nowait)
    try:
        task = asyncio.ensure_future(run())
    finally:
        SINK.reset(token)
    task.add_done_callback(lambda _: queue.put_nowait(_END))
    try:
        while (item := await queue.get()) is not _END:
            yield item
    except BaseException:  # closed or cancelled: the step's call in flight is cancelled with it
        task.cancel()
        await asyncio.wait({task})
        raise
    yield task.result()


class StepStream:
    """The partials of one streamed step; ``result`` and ``value`` once it has ended. Iterate it with
    ``async for`` (``Predict.astream``) or ``for`` (``Predict.stream``)."""

    def __init__(self, run: AsyncGenerator[Any, None], finish: Callable[[Any], Any]) -> None:
        self._run = run
        self._finish = finish
        self._sync: Iterator[Any] | None = None
        self.result: Any = None
        self.value: Any = None

    def _ended(self, result: Any) -> None:
        self.result = result
        self.value = self._finish(result)  # raises OutputParseError when no candidate parsed

    def __aiter__(self) -> StepStream:
        return self

    async def __anext__(self) -> Partial:
        item = await self._run.__anext__()
        if isinstance(item, Partial):
            return item
        await self._run.aclose()
        self._ended(item)
        raise StopAsyncIteration

    def __iter__(self) -> StepStream:
        return self

    def __next__(self) -> Partial:
        if self._sync is None:
            self._sync = iterate_sync(self._run)
        item = next(self._sync)
        if isinstance(item, Partial):
            return item
        self.close()
        self._ended(item)
        raise StopIteration

    def close(self) -> None:
        """Cancel the step if it has not ended (sync iteration)."""
        if self._sync is not None:
            self._sync.close()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Cancel the step if it has not ended."""
        await self._run.aclose()

    def __enter__(self) -> StepStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> StepStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["SINK", "Partial", "StepStream", "partials", "repeats", "streamed_calls"]
