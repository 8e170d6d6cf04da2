"""What ``Backend.stream`` and ``Backend.astream`` return: the reply's text deltas as they are generated.

Guarantees:

- Iterating yields ``str`` deltas in order; their concatenation is the reply's text. When the iteration
  ends, ``generation`` holds the same ``Generation`` that ``generate`` would have returned (usage, cache
  flag, call id), and the reply is in the cache (when caching is on).
- A stream that is closed before its end (``close()``/``aclose()``, ``break`` out of a ``with`` block, or
  the stream dropped and collected) cancels the generation: the model stops at its next token, the
  budget reservation is released (what was really generated is charged), nothing is written to the
  cache, and the call's span says ``cancelled``. ``generation`` stays ``None``.
- A reply found in the cache streams too, as one delta.

``Feed`` carries deltas from the thread (or task) that runs a backend's ``_stream`` hook to the
consumer; its ``emit`` is the callback a hook calls for each delta, and answers True once the consumer
has gone, which tells the hook to stop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from compound.core.types import Generation

#: a hook's callback for one delta: returns True when the consumer has gone and the hook should stop
Emit = Callable[[str], bool]


class Feed:
    """A thread-safe queue of deltas from a producer to one consumer, with a stop flag the other way."""

    END: Any = object()

    def __init__(self, put: Callable[[Any], object] | None = None) -> None:
        self.stopped = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._put: Callable[[Any], object] = put or self._queue.put

    def emit(self, delta: str) -> bool:
        if self.stopped.is_set():
            return True
        if delta:
            self._put(delta)
        return False

    def end(self, _: Any = None) -> None:
        self._put(self.END)

    def get(self) -> Any:
        return self._queue.get()


class TextStream:
    """The deltas of one streamed call (sync). Use as an iterator, ideally in a ``with`` block."""

    def __init__(self, run: Generator[str, None, Generation]) -> None:
        self._run = run
        self.generation: Generation | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._run)
        except StopIteration as done:
            if done.value is not None:  # the run's end (a finished run stops again with no value)
                self.generation = done.value
            raise StopIteration from None

    @property
    def text(self) -> str:
        """The whole reply: reads the rest of the stream first."""
        for _ in self:
            pass
        assert self.generation is not None
        return self.generation.text

    def close(self) -> None:
        """Cancel the call if it has not finished (the model stops at its next token)."""
        self._run.close()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTextStream:
    """The deltas of one streamed call on the event loop. Use with ``async for``, ideally in ``async with``."""

    def __init__(self, run: AsyncGenerator[str | Generation, None]) -> None:
        self._run = run
        self.generation: Generation | None = None

    def __aiter__(self) -> AsyncTextStream:
        return self

    async def __anext__(self) -> str:
        item = await self._run.__anext__()
        if isinstance(item, Generation):  # the run's last item: the call's result
            self.generation = item
            await self._run.aclose()
            raise StopAsyncIteration
        return item

    async def text(self) -> str:
        """The whole reply: reads the rest of the stream first."""
        async for _ in self:
            pass
        assert self.generation is not None
        return self.generation.text

    async def aclose(self) -> None:
        """Cancel the call if it has not finished (the model stops at its next token)."""
        await self._run.aclose()

    async def __aenter__(self) -> AsyncTextStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__ = ["AsyncTextStream", "Emit", "Feed", "TextStream"]
