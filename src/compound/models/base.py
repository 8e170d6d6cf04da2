"""The backend protocol.

``Backend.generate`` and ``Backend.agenerate`` are final: they do caching, budget reservation, usage
accounting and tracing around the abstract ``_generate`` (or ``_agenerate``) that each backend writes,
so a new backend cannot skip any of them.

Budgets are charged per request that reaches the model, not per call: a backend that may send one call
as several requests (retries, a refused constraint sent again) calls ``reserve_request`` before each,
and ``unanswered`` when one got no reply. The first request is the one ``generate`` reserved; each
further one reserves one more call before it is sent (and the call's worst case in tokens and money
again when the request before it got no reply), or fails with ``BudgetExceededError``. A call's
``usage.calls`` is the number of requests it sent; a request that got no reply (a timeout, a dropped
connection) may still have been computed, so a budget charges it its whole worst case.

``Backend.stream`` and ``Backend.astream`` are final too, and go through the same steps (cache lookup,
budget reservation, usage, trace, cache write) around the ``_stream`` (or ``_astream``) hook, which
calls ``emit(delta)`` for each piece of text and returns the ``Completion`` as ``_generate`` does. A
backend that writes no ``_stream`` streams its whole reply as one delta. A stream the consumer closes
before its end cancels the call (``models.stream``): the hook sees ``emit`` answer True and stops,
what was generated is charged and the rest of the reservation released, the cache is not written, and
the span's status is ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from abc import ABC
from collections.abc import AsyncGenerator, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, final
from weakref import WeakKeyDictionary

from compound.core import budget as budgets
from compound.core.concurrency import Slots
from compound.core.errors import CompoundError, InputTypeError
from compound.core.settings import Settings, get_settings
from compound.core.types import Completion, Generation, Request, as_messages
from compound.core.usage import Usage, active_trackers, process_cpu
from compound.models.override import check_allowed
from compound.models.stream import AsyncTextStream, Emit, Feed, TextStream
from compound.store.cache import ResponseCache, cache_at, cache_key
from compound.store.traces import Span, child_span, record

_REQUEST_FIELDS = set(Request.__dataclass_fields__) - {"messages"}
#: the call whose requests the running ``_generate`` sends (set by ``generate``/``agenerate``)
_CURRENT: ContextVar[_Call | None] = ContextVar("compound_call", default=None)
#: where the hooks of streamed calls on backends without their own worker thread run
_STREAMS = ThreadPoolExecutor(64, thread_name_prefix="compound-stream")
#: how long a closed stream's hook on the event loop gets to notice and return what it generated
_STOP_GRACE_S = 2.0
#: a call's timed result: the completion, wall seconds and CPU seconds
Timed = tuple[Completion, float, float]


def build_request(prompt: Any, params: dict[str, Any]) -> Request:
    if isinstance(prompt, Request):
        return prompt.with_(**params) if params else prompt
    unknown = set(params) - _REQUEST_FIELDS
    if unknown:
        raise InputTypeError(f"unknown generation parameter(s) {sorted(unknown)}; known: {sorted(_REQUEST_FIELDS)}")
    if "stop" in params and isinstance(params["stop"], (list, str)):
        params["stop"] = (params["stop"],) if isinstance(params["stop"], str) else tuple(params["stop"])
    return Request(as_messages(prompt), **params)


class Backend(ABC):  # noqa: B024 (subclasses implement _generate or _agenerate, either one)
    """A model behind one interface. Subclasses implement ``_generate`` and/or ``_agenerate``."""

    kind: ClassVar[str] = "base"
    #: True when ``_generate`` blocks (CPU work or I/O): async callers then run it in a worker thread.
    blocking: ClassVar[bool] = True
    #: True when one instance can serve one call at a time (in-process models). Such calls all run on
    #: one dedicated thread: they queue there (waiting is not counted as work), and native thread pools
    #: (llama.cpp's OpenMP team) stay bound to one caller instead of spinning up a team per thread.
    serialize: ClassVar[bool] = False
    #: True for fakes (the scripted backend): they may run where real model requests are forbidden.
    simulated: ClassVar[bool] = False

    #: attributes that belong to one process (locks, clients, a loaded model): not pickled, made anew
    _transient: ClassVar[tuple[str, ...]] = ("_loop_slots", "_worker")

    def __init__(self, model: str) -> None:
        self.model = model
        self._init_transient()

    #: True for in-process inference on native threads (llama.cpp): a call's CPU is then measured with
    #: the process clock, one measurement at a time (``core.usage.process_cpu``); otherwise per thread
    process_clock: ClassVar[bool] = False

    def _init_transient(self) -> None:
        """Create per-process state. Subclasses extend it (and ``_transient``) for their own."""
        self._loop_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, Slots] = WeakKeyDictionary()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"compound-{self.kind}") if self.serialize else None

    def __getstate__(self) -> dict[str, Any]:
        """Backends travel to other processes (Ray workers) without locks, clients or loaded weights."""
        return {k: v for k, v in self.__dict__.items() if k not in self._transient}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._init_transient()

    @property
    def model_id(self) -> str:
        return f"{self.kind}:{self.model}"

    def cache_identity(self) -> str:
        """What the response cache keys this backend's replies on: two backends share cached replies
        only when this is equal. Remote backends add their endpoint and the served model's identity."""
        return self.model_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r})"

    # --- what a backend implements ------------------------------------------------------------------
    def _generate(self, request: Request) -> Completion:
        raise NotImplementedError(f"{type(self).__name__} implements neither _generate nor _agenerate")

    async def _agenerate(self, request: Request) -> Completion:
        if type(self)._generate is Backend._generate:
            raise NotImplementedError(f"{type(self).__name__} implements neither _generate nor _agenerate")
        if self.blocking:
            return await asyncio.to_thread(self._generate, request)
        return self._generate(request)

    def _stream(self, request: Request, emit: Emit) -> Completion:
        """Generate, calling ``emit(delta)`` for each piece of the reply as it comes; stop early (and
        return what was generated, ``finish_reason="cancelled"``) once ``emit`` answers True. The default
        sends the whole reply as one delta."""
        completion = self._generate(request)
        emit(completion.text)
        return completion

    async def _astream(self, request: Request, emit: Emit) -> Completion:
        """``_stream`` on the event loop (only for backends whose async path is native, ``blocking=False``
        or an own ``_agenerate``); the default sends the whole reply as one delta."""
        completion = await self._agenerate(request)
        emit(completion.text)
        return completion

    def _prepare(self) -> None:  # noqa: B027 (an optional hook: most backends have nothing to prepare)
        """Get ready to answer without making a call (load a local model). Default: nothing to do."""

    @final
    def prepare(self) -> None:
        """Get ready to answer without making a call, raising what a first call would raise for want of
        the model (``ModelNotInstalledError``, a missing file): a Ray worker checks so before any row."""
        self._prepare()

    def count_prompt_tokens(self, request: Request) -> int:
        """An upper bound on the prompt's tokens, used to reserve budget before the call.

        The default (UTF-8 bytes plus per-message overhead) bounds any byte-level BPE tokenizer.
        Backends that can tokenize exactly override it."""
        return sum(len(m.content.encode()) + 8 for m in request.messages) + 8

    def estimate_energy_j(self, completion: Completion, cpu_s: float, settings: Settings) -> float:
        """Joules for a call that measured none: CPU seconds times watts per busy core."""
        return cpu_s * settings.watts_per_core

    # --- the final public API -------------------------------------------------------------------------
    @final
    def generate(self, prompt: Any, **params: Any) -> Generation:
        """Generate a reply (sync, no event loop).

        Args:
            prompt: a string, a list of messages or a ``Request``.
            **params: generation parameters (``max_tokens``, ``temperature``, ``json_schema``, ``cache`` ...).

        Returns:
            The ``Generation``: text, usage and the call's id in the trace.
        """
        call = _Call(build_request(prompt, params), get_settings())
        hit = self._lookup(call)
        if hit is not None:
            return hit
        self._start(call)
        current = _CURRENT.set(call)
        try:
            if self._worker is None:
                completion, wall, cpu = self._timed(call.request)
            else:
                completion, wall, cpu = self._worker.submit(
                    contextvars.copy_context().run, self._timed, call.request
                ).result()
        except BaseException as e:
            self._failed(call, e)
            raise
        finally:
            _CURRENT.reset(current)
        return self._finish(call, completion, wall, cpu)

    @final
    async def agenerate(self, prompt: Any, **params: Any) -> Generation:
        """``generate`` on the event loop. Calls in flight per backend and loop are bounded by the
        settings' ``max_concurrency``, read when each call starts."""
        call = _Call(build_request(prompt, params), get_settings())
        hit = self._lookup(call)
        if hit is not None:
            return hit
        async with self._slots().hold(call.settings.max_concurrency):
            await self._astart(call)
            current = _CURRENT.set(call)
            try:
                completion, wall, cpu = await self._atimed(call.request)
            except BaseException as e:
                self._failed(call, e)
                raise
            finally:
                _CURRENT.reset(current)
        return self._finish(call, completion, wall, cpu)

    @final
    def stream(self, prompt: Any, **params: Any) -> TextStream:
        """``generate``, yielding the reply's text as it is generated (``models.stream.TextStream``).

        Caching, budgets, usage and the trace hold exactly as for ``generate``: the whole reply is cached
        only once the stream has ended; a stream closed before its end cancels the call."""
        return TextStream(self._sync_stream(_Call(build_request(prompt, params), get_settings())))

    @final
    def astream(self, prompt: Any, **params: Any) -> AsyncTextStream:
        """``stream`` on the event loop (``async for delta in backend.astream(...)``)."""
        return AsyncTextStream(self._async_stream(_Call(build_request(prompt, params), get_settings())))

    def _sync_stream(self, call: _Call) -> Generator[str, None, Generation]:
        hit = self._lookup(call)
        if hit is not None:
            if hit.text:
                yield hit.text
            return hit
        self._start(call)
        feed = Feed()
        current = _CURRENT.set(call)
        try:
            ctx = contextvars.copy_context()
        finally:
            _CURRENT.reset(current)
        future: Future[Timed] = (self._worker or _STREAMS).submit(ctx.run, self._timed, call.request, feed.emit)
        future.add_done_callback(feed.end)
        try:
            while (item := feed.get()) is not Feed.END:
                yield item
            timed = future.result()
        except GeneratorExit:
            feed.stopped.set()
            self._cancelled(call, _result(future))
            raise
        except BaseException as e:
            self._failed(call, e)
            raise
        return self._finish(call, *timed)

    async def _async_stream(self, call: _Call) -> AsyncGenerator[str | Generation, None]:
        hit = self._lookup(call)
        if hit is not None:
            if hit.text:
                yield hit.text
            yield hit
            return
        async with self._slots().hold(call.settings.max_concurrency):
            await self._astart(call)
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[Any] = asyncio.Queue()
            feed = Feed(put=lambda item: loop.call_soon_threadsafe(queue.put_nowait, item))
            current = _CURRENT.set(call)
            try:
                task = asyncio.ensure_future(self._atimed(call.request, feed.emit))
            finally:
                _CURRENT.reset(current)
            task.add_done_callback(lambda _: queue.put_nowait(Feed.END))
            try:
                while (item := await queue.get()) is not Feed.END:
                    yield item
                timed = task.result()
            except (GeneratorExit, asyncio.CancelledError):
                feed.stopped.set()  # the hook stops at its next delta, and returns what it generated
                await asyncio.wait({task}, timeout=_STOP_GRACE_S if self._native_async() else None)
                if not task.done():  # a hook on the loop that waits on a silent server: cancel it
                    task.cancel()
                    await asyncio.wait({task})
                self._cancelled(call, None if task.cancelled() or task.exception() else task.result())
                raise
            except BaseException as e:
                self._failed(call, e)
                raise
        yield self._finish(call, *timed)

    # --- for backends that send a call as several requests -------------------------------------------
    @staticmethod
    def reserve_request() -> None:
        """Before each request of the running call: the first was reserved by ``generate``; each further
        one reserves one more call (and the worst case again if the one before got no reply) at once,
        or raises ``BudgetExceededError``: a call that holds a reservation never waits for more."""
        call = _CURRENT.get()
        if call is None:
            return
        if call.requests and call.worst is not None:
            lost = call.unanswered > call.charged_lost
            call.plan += budgets.reserve(*(call.worst if lost else (0, 0.0)), wait=False)
            call.charged_lost = call.unanswered
        call.requests += 1

    @staticmethod
    def unanswered() -> None:
        """The request just sent got no reply: the server may have computed it all, so it is charged."""
        call = _CURRENT.get()
        if call is not None:
            call.unanswered += 1

    # --- the machinery the final methods share ---------------------------------------------------------
    def _slots(self) -> Slots:
        """This backend's slots on the running loop (dropped with the loop: no state outlives it)."""
        loop = asyncio.get_running_loop()
        slots = self._loop_slots.get(loop)
        if slots is None:
            slots = self._loop_slots[loop] = Slots()
        return slots

    def _open(self, call: _Call) -> None:
        check_allowed(self)
        call.span = child_span("llm", self.model_id)

    def _start(self, call: _Call) -> None:
        """Open the call's span and reserve its worst case in the active budgets (waiting for room)."""
        self._open(call)
        if budgets.active_budgets():
            call.worst = self._worst_case(call.request, call.settings)
            call.plan = budgets.reserve(*call.worst)

    async def _astart(self, call: _Call) -> None:
        """``_start`` on the event loop."""
        self._open(call)
        if budgets.active_budgets():
            call.worst = self._worst_case(call.request, call.settings)
            call.plan = await budgets.areserve(*call.worst)

    def _timed(self, request: Request, emit: Emit | None = None) -> Timed:
        """Run the hook (``_generate``, or ``_stream`` when streaming) with its wall and CPU time."""
        if self.process_clock:
            with process_cpu() as spent:
                completion = self._generate(request) if emit is None else self._stream(request, emit)
            return completion, spent[0], spent[1]
        t0, c0 = time.perf_counter(), time.thread_time()
        completion = self._generate(request) if emit is None else self._stream(request, emit)
        return completion, time.perf_counter() - t0, time.thread_time() - c0

    def _native_async(self) -> bool:
        """Whether async calls run on the event loop (``_agenerate``/``_astream``) rather than a thread."""
        return self._worker is None and not (type(self)._agenerate is Backend._agenerate and self.blocking)

    async def _atimed(self, request: Request, emit: Emit | None = None) -> Timed:
        if self._worker is not None:
            ctx = contextvars.copy_context()
            return await asyncio.wrap_future(self._worker.submit(ctx.run, self._timed, request, emit))
        if not self._native_async():
            return await asyncio.to_thread(self._timed, request, emit)  # CPU measured in the worker thread
        t0, c0 = time.perf_counter(), time.thread_time()
        completion = await (self._agenerate(request) if emit is None else self._astream(request, emit))
        return completion, time.perf_counter() - t0, time.thread_time() - c0

    def _lookup(self, call: _Call) -> Generation | None:
        request = call.request
        if not (call.settings.cache if request.cache is None else request.cache):
            return None
        call.key = cache_key(self.cache_identity(), call.fields())
        call.cache = cache_at(call.settings.cache_path)
        hit = call.cache.get(call.key)
        if hit is None:
            return None
        hit.cached = True
        span = child_span("llm", self.model_id)
        hit.run_id = span.run_id
        hit.meta["original_call_id"] = hit.call_id
        hit.call_id = span.id
        for tracker in active_trackers():
            tracker.record(hit.usage, cached=True)
        self._trace(call, span, hit)
        return hit

    def _worst_case(self, request: Request, settings: Settings) -> tuple[int, float]:
        """What a call reserves before it starts: tokens (prompt plus all of max_tokens) and their cost."""
        prompt_tokens = self.count_prompt_tokens(request)
        return prompt_tokens + request.max_tokens, settings.price_for(self.model).cost(
            prompt_tokens, request.max_tokens
        )

    def _charged(self, call: _Call, usage: Usage | None) -> Usage | None:
        """What the call's budgets are charged: its usage (or, for a call that failed after sending
        requests, their count) plus the worst case of each request that got no reply."""
        if usage is None and call.requests == 0:
            return None
        charged = Usage(calls=call.requests) if usage is None else Usage() + usage
        if call.unanswered and call.worst is not None:
            tokens, cost = call.worst
            charged.add(Usage(prompt_tokens=tokens * call.unanswered, cost_usd=cost * call.unanswered))
        return charged

    def _failed(self, call: _Call, error: BaseException) -> None:
        budgets.settle(call.plan, self._charged(call, None))
        span = call.span
        span.ended = time.time()
        span.status = "error"
        span.attrs["error"] = f"{type(error).__name__}: {error}"
        if not isinstance(error, (CompoundError, asyncio.CancelledError)):
            span.attrs["error_type"] = "backend"
        if call.settings.trace:
            record(span)

    def _cancelled(self, call: _Call, timed: Timed | None) -> None:
        """A stream closed before its end: charge what was generated, release the rest, cache nothing."""
        usage = None if timed is None else self._usage(call, *timed)
        budgets.settle(call.plan, self._charged(call, usage))
        if usage is not None:
            for tracker in active_trackers():
                tracker.record(usage, cached=False)
        span = call.span
        span.ended = time.time()
        span.status = "cancelled"
        span.attrs["error"] = "cancelled: the stream was closed before the reply ended"
        if timed is not None and usage is not None:
            span.attrs.update(reply=timed[0].text, usage=usage.to_dict())
        if call.settings.trace:
            record(span)

    def _usage(self, call: _Call, completion: Completion, wall: float, cpu: float) -> Usage:
        settings = call.settings
        measured = completion.energy_j is not None
        return Usage(
            calls=max(1, call.requests),
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            wall_s=wall,
            cpu_s=cpu,
            cost_usd=settings.price_for(self.model).cost(completion.prompt_tokens, completion.completion_tokens),
            energy_j=completion.energy_j
            if completion.energy_j is not None
            else self.estimate_energy_j(completion, cpu, settings),
            energy_estimated=not measured,
            unconstrained=int(completion.meta.get("constraint") == "unconstrained"),
        )

    def _finish(self, call: _Call, completion: Completion, wall: float, cpu: float) -> Generation:
        span = call.span
        usage = self._usage(call, completion, wall, cpu)
        gen = Generation(
            text=completion.text,
            model=self.model_id,
            usage=usage,
            finish_reason=completion.finish_reason,
            logprobs=completion.logprobs,
            call_id=span.id,
            run_id=span.run_id,
            meta=dict(completion.meta),
        )
        budgets.settle(call.plan, self._charged(call, usage), gen)
        for tracker in active_trackers():
            tracker.record(usage, cached=False)
        if call.cache is not None and call.key is not None:
            call.cache.put(call.key, gen)
        self._trace(call, span, gen)
        return gen

    def _trace(self, call: _Call, span: Span, gen: Generation) -> None:
        if not call.settings.trace:
            return
        span.ended = time.time()
        params = dict(call.fields())
        messages = params.pop("messages")
        span.attrs = {
            "messages": messages,
            "params": params,
            "reply": gen.text,
            "usage": gen.usage.to_dict(),
            "cached": gen.cached,
            "finish_reason": gen.finish_reason,
        }
        if "constraint" in gen.meta:
            span.attrs["constraint"] = gen.meta["constraint"]
        record(span)


def _result(future: Future[Timed]) -> Timed | None:
    """A finished hook's result, or None where it failed (waits for it: the engine stops within a token)."""
    try:
        return future.result()
    except BaseException:
        return None


@dataclass(slots=True)
class _Call:
    """One call in flight: its request and settings, cache key, span, budget reservations (one per
    request sent, each of the worst case ``worst``), and how many requests it sent and lost."""

    request: Request
    settings: Settings
    key: str | None = None
    cache: ResponseCache | None = None  # the cache it was looked up in, and is stored in
    span: Any = None
    plan: list = field(default_factory=list)
    worst: tuple[int, float] | None = None
    requests: int = 0
    unanswered: int = 0
    charged_lost: int = 0  # unanswered requests whose worst case a later request has reserved
    _fields: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        """The request's cache-key fields, computed once (the cache key and the trace share them)."""
        if self._fields is None:
            self._fields = self.request.key_fields()
        return self._fields


__all__ = ["Backend", "build_request"]
