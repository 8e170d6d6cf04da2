"""A deterministic fake backend for tests and benchmarks: scripted replies or a reply function,
with realistic token counts (about four characters a token) so budgets and reports behave as on a
real model, an optional latency per call (``latency_s``), and a count of the calls inside it at once
(``in_flight``, ``peak_in_flight``), so tests can see the concurrency a program really had.

Streamed, a reply comes as word-sized deltas with the latency spread over them (the first after
``latency_s / 4``, as a real model's prompt reading comes before its first token), and stops at the next
delta once the consumer has gone (``finish_reason="cancelled"``, the words sent so far)."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import cast

from compound.core.errors import InputError
from compound.core.types import Completion, Request
from compound.models.base import Backend
from compound.models.stream import Emit


def count_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4)


class ScriptedBackend(Backend):
    """``ScriptedBackend(["a", "b"])`` replies "a", then "b", then "a" ... ;
    ``ScriptedBackend(lambda request: "...")`` computes each reply from the request.

    ``model`` names it in the cache and in price tables: two scripted backends that should not share
    cached replies need different names."""

    kind = "scripted"
    blocking = False
    simulated = True

    def __init__(
        self,
        replies: Iterable[str] | Callable[[Request], str] | None = None,
        *,
        model: str = "scripted",
        latency_s: float = 0.0,
        cycle: bool = True,
    ) -> None:
        super().__init__(model)
        self.latency_s = latency_s
        self.requests: list[Request] = []  # every request that reached the backend (not cache hits)
        self.in_flight = 0  # calls inside the backend now (after their latency began, before the reply)
        self.peak_in_flight = 0  # the most calls that were inside the backend at once
        if replies is None:
            self._fn: Callable[[Request], str] | None = lambda r: r.messages[-1].content
            self._replies = None
        elif callable(replies):
            self._fn, self._replies = replies, None
        else:
            items = list(replies)
            if not items:
                raise InputError("ScriptedBackend needs at least one reply")
            self._fn = None
            self._replies = itertools.cycle(items) if cycle else iter(items)

    _transient = Backend._transient + ("_lock",)

    def _init_transient(self) -> None:
        super()._init_transient()
        self._lock = threading.Lock()

    def count_prompt_tokens(self, request: Request) -> int:
        return sum(count_tokens(m.content) + 4 for m in request.messages)

    def _reply(self, request: Request) -> Completion:
        with self._lock:
            self.requests.append(request)
            if self._fn is not None:
                text = self._fn(request)
            else:
                try:
                    text = next(cast(Iterator[str], self._replies))
                except StopIteration:
                    raise InputError(
                        "ScriptedBackend ran out of scripted replies: pass more replies, or cycle=True"
                    ) from None
        tokens = count_tokens(text)
        finish = "stop"
        if tokens > request.max_tokens:  # truncate as a real model would
            text, tokens, finish = text[: request.max_tokens * 4], request.max_tokens, "length"
        return Completion(text, self.count_prompt_tokens(request), tokens, finish)

    def _count(self, step: int) -> None:
        with self._lock:
            self.in_flight += step
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _generate(self, request: Request) -> Completion:
        self._count(1)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            return self._reply(request)
        finally:
            self._count(-1)

    async def _agenerate(self, request: Request) -> Completion:
        self._count(1)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            return self._reply(request)
        finally:
            self._count(-1)

    def _pieces(self, request: Request) -> tuple[Completion, list[str], float]:
        completion = self._reply(request)
        pieces = re.findall(r"\s*\S+|\s+$", completion.text) or [completion.text]
        return completion, pieces, self.latency_s * 0.75 / len(pieces)

    @staticmethod
    def _cut(completion: Completion, pieces: list[str], sent: int) -> Completion:
        text = "".join(pieces[:sent])
        return Completion(text, completion.prompt_tokens, count_tokens(text), "cancelled")

    def _stream(self, request: Request, emit: Emit) -> Completion:
        self._count(1)
        try:
            time.sleep(self.latency_s / 4)
            completion, pieces, gap = self._pieces(request)
            for i, piece in enumerate(pieces):
                if emit(piece):
                    return self._cut(completion, pieces, i)
                time.sleep(gap)
            return completion
        finally:
            self._count(-1)

    async def _astream(self, request: Request, emit: Emit) -> Completion:
        self._count(1)
        try:
            await asyncio.sleep(self.latency_s / 4)
            completion, pieces, gap = self._pieces(request)
            for i, piece in enumerate(pieces):
                if emit(piece):
                    return self._cut(completion, pieces, i)
                await asyncio.sleep(gap)
            return completion
        finally:
            self._count(-1)
