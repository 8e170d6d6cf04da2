"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp's llama-server, llama-cpp-python, Ollama.

Base URL and key come from the settings (``openai_base_url``, ``openai_api_key``) or the environment
(``OPENAI_BASE_URL``, ``OPENAI_API_KEY``). Guarantees:

- **The server's dialect is used** (``models.dialects``): detected per base URL by a cheap probe, corrected
  on the first refusal of a constraint, remembered per process. A reply the server could not constrain
  is marked ``constraint: unconstrained`` in the generation's meta, its usage and its trace span.
- **Every request is budgeted** (``models.base``): each retry or re-sent request reserves its worst case
  before it goes out, and one that got no reply is charged in full.
- **Retries that can succeed** (``models.retry``): the openai client's own retries are off; this backend
  retries only 429, 503, timeouts and dropped connections, up to ``max_retries`` times, waiting what
  ``Retry-After`` asks. A 400, 404, 422 or 500 is sent once and raised with the server's message.
- **The cache knows the endpoint**: ``cache_identity`` is the model alias, the base URL and, where the
  server reports one, the served model's identity, so one alias on two servers never shares a reply.
- **Loop-safe clients**: async clients are kept per event loop in a ``WeakKeyDictionary`` keyed by the
  loop object (never ``id(loop)``, which a new loop can reuse), so a client is never handed to another
  loop; entries of closed loops are dropped at the next lookup (a client's pooled connections keep its
  loop alive, so the weak key alone would not free it).
- Requests- and tokens-per-minute limits are applied before each request.
- **Streaming** (``stream``/``astream``) sends the same request with ``stream: true`` and
  ``stream_options.include_usage``, so the last chunk carries the usage; closing the stream closes the
  HTTP response, which a server takes as the end of the generation. Errors before the first delta are
  retried and stepped down as above; a connection lost after deltas went out is raised, never retried
  (the consumer has text that a second reply would not continue). Ollama's native API is not streamed:
  its whole reply comes as one delta.

The call logic (dialect, retries, refusals) is written once as a generator that yields HTTP calls or
waits and receives replies or exceptions; ``core.protocol``'s sync and async drivers run it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Generator
from typing import Any

from compound.core.errors import BackendError, ConfigurationError, ModelRequestsForbiddenError
from compound.core.protocol import adrive, drive
from compound.core.settings import Settings, get_settings
from compound.core.types import Completion, Request
from compound.models import dialects
from compound.models.base import Backend
from compound.models.engines import Chunks
from compound.models.override import check_allowed
from compound.models.ratelimit import RateLimiter
from compound.models.retry import classify, retry_delay, server_message
from compound.models.stream import Emit

#: what the call protocol yields: an HTTP call to make, or seconds to wait before the next one
Step = dialects.Call | float


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None) -> None:
        super().__init__(model)
        self._base_url = base_url
        self._api_key = api_key

    _transient = Backend._transient + ("_clients", "_loop_clients", "_limiters", "_lock")

    def _init_transient(self) -> None:
        super()._init_transient()
        self._clients: dict[tuple, Any] = {}
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._limiters: dict[tuple, RateLimiter] = {}
        self._lock = threading.Lock()

    def _endpoint(self, settings: Settings) -> tuple[str, str]:
        base_url = self._base_url or settings.openai_base_url or os.environ.get("OPENAI_BASE_URL")
        key = self._api_key or settings.openai_api_key or os.environ.get("OPENAI_API_KEY")
        if base_url is None and key is None:
            raise ConfigurationError(
                "the openai backend needs a server: set OPENAI_BASE_URL (and OPENAI_API_KEY for hosted APIs), "
                "or compound.configure(openai_base_url=..., openai_api_key=...)"
            )
        return (base_url or "https://api.openai.com/v1").rstrip("/"), key or "not-needed"  # local servers take any key

    def _client(self, asynchronous: bool) -> Any:
        import openai

        settings = get_settings()
        base_url, key = self._endpoint(settings)
        ident = (base_url, key, settings.request_timeout_s)
        with self._lock:
            if asynchronous:  # an async client belongs to the loop it was made on
                for dead in [loop for loop in self._loop_clients if loop.is_closed()]:
                    del self._loop_clients[dead]  # its pooled connections hold the loop: drop them with it
                clients = self._loop_clients.setdefault(asyncio.get_running_loop(), {})
            else:
                clients = self._clients
            client = clients.get(ident)
            if client is None:
                cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
                # retries are this backend's (models.retry), never the client's
                client = clients[ident] = cls(
                    base_url=base_url, api_key=key, timeout=settings.request_timeout_s, max_retries=0
                )
        return client

    def dialect(self) -> dialects.DialectReport:
        """What this backend's server speaks (probed once per process and base URL)."""
        base_url, _ = self._endpoint(get_settings())
        return dialects.known(base_url) or dialects.report_for(self._client(False), base_url)

    def cache_identity(self) -> str:
        base_url, _ = self._endpoint(get_settings())
        try:
            check_allowed(self)  # where model requests are forbidden, not even the probe is sent
        except ModelRequestsForbiddenError:
            return f"{self.model_id}@{base_url}"
        served = self.dialect().identity(self.model)
        return f"{self.model_id}@{base_url}" + (f"#{served}" if served else "")

    def _limiter(self, settings: Settings) -> RateLimiter | None:
        if not (settings.requests_per_minute or settings.tokens_per_minute):
            return None
        ident = (settings.requests_per_minute, settings.tokens_per_minute)
        with self._lock:
            lim = self._limiters.get(ident)
            if lim is None:
                lim = self._limiters[ident] = RateLimiter(*ident)
        return lim

    def estimate_energy_j(self, completion: Completion, cpu_s: float, settings: Settings) -> float:
        """The server's energy is not visible from here: estimated per token."""
        return (completion.prompt_tokens + completion.completion_tokens) * settings.joules_per_remote_token

    def _protocol(self, report: dialects.DialectReport, request: Request) -> Generator[Step, Any, Completion]:
        """Send ``request`` in the server's dialect; retry what can succeed; step down on a refusal."""
        import openai

        start, retries, max_retries = report, 0, get_settings().max_retries
        while True:
            call = dialects.encode(report, request, self.model)
            try:
                data = yield call
            except openai.OpenAIError as e:
                error = classify(e, f"{self.model_id} at {report.base_url}")
                if isinstance(e, openai.APIConnectionError) and not isinstance(e, openai.APITimeoutError):
                    dialects.forget(report.base_url)  # the server went away: whatever answers next is probed anew
                if error.retryable and retries < max_retries:
                    retries += 1
                    yield retry_delay(e, retries)
                    continue
                if dialects.refused(error.status, server_message(e), call):
                    report = dialects.downgrade(report, call)
                    continue
                if error.retryable:
                    error.args = (f"{error} (after {retries} retries)",)
                raise error from e
            if report is not start:
                dialects.remember(report)  # the plainer form passed: later calls start from it
            return dialects.decode(call, data)

    def _generate(self, request: Request) -> Completion:
        return self._run(request, None)

    def _stream(self, request: Request, emit: Emit) -> Completion:
        return self._run(request, emit)

    async def _agenerate(self, request: Request) -> Completion:
        return await self._arun(request, None)

    async def _astream(self, request: Request, emit: Emit) -> Completion:
        return await self._arun(request, emit)

    def _run(self, request: Request, emit: Emit | None) -> Completion:
        import openai

        if (lim := self._limiter(get_settings())) is not None:
            lim.acquire(self.count_prompt_tokens(request) + request.max_tokens)
        client = self._client(False)
        streamed: list[bool] = []  # per request sent: whether it was streamed

        def handle(step: Step) -> Any:
            if not isinstance(step, dialects.Call):
                return time.sleep(step)
            self.reserve_request()
            chunks = None if emit is None or not _streamable(step) else Chunks(emit)
            streamed.append(chunks is not None)
            try:
                if chunks is None:
                    return client.post(step.url, body=step.body, cast_to=object)
                with client.post(**_streamed(step), stream_cls=openai.Stream[dict]) as events:
                    return chunks.drain(events).reply()
            except openai.APIConnectionError as e:  # a timeout too: the server may have computed it
                self.unanswered()
                _raise_if_streamed(chunks, e)
                raise

        return _whole_if_unstreamed(
            drive(self._protocol(self.dialect(), request), handle, (openai.OpenAIError,)), emit, streamed
        )

    async def _arun(self, request: Request, emit: Emit | None) -> Completion:
        import openai

        if (lim := self._limiter(get_settings())) is not None:
            await lim.aacquire(self.count_prompt_tokens(request) + request.max_tokens)
        base_url, _ = self._endpoint(get_settings())
        report = dialects.known(base_url) or await asyncio.to_thread(self.dialect)
        client = self._client(True)
        streamed: list[bool] = []

        async def handle(step: Step) -> Any:
            if not isinstance(step, dialects.Call):
                return await asyncio.sleep(step)
            self.reserve_request()
            chunks = None if emit is None or not _streamable(step) else Chunks(emit)
            streamed.append(chunks is not None)
            try:
                if chunks is None:
                    return await client.post(step.url, body=step.body, cast_to=object)
                events = await client.post(**_streamed(step), stream_cls=openai.AsyncStream[dict])
                try:
                    async for event in events:
                        if chunks.add(event):
                            break
                finally:
                    await events.close()
                return chunks.reply()
            except openai.APIConnectionError as e:  # a timeout too: the server may have computed it
                self.unanswered()
                _raise_if_streamed(chunks, e)
                raise

        return _whole_if_unstreamed(
            await adrive(self._protocol(report, request), handle, (openai.OpenAIError,)), emit, streamed
        )


def _streamable(call: dialects.Call) -> bool:
    return call.url == "/chat/completions"


def _streamed(call: dialects.Call) -> dict[str, Any]:
    body = {**call.body, "stream": True, "stream_options": {"include_usage": True}}
    return {"path": call.url, "body": body, "cast_to": object, "stream": True}


def _raise_if_streamed(chunks: Chunks | None, error: Exception) -> None:
    """A connection lost after deltas went out is not retried: a second reply would not continue them."""
    if chunks is not None and chunks.parts:
        raise BackendError(f"the stream broke after {len(chunks.parts)} deltas: {error}") from error


def _whole_if_unstreamed(completion: Completion, emit: Emit | None, streamed: list[bool]) -> Completion:
    """A streamed call whose request could not be streamed (Ollama's native API) sends its reply now."""
    if emit is not None and not (streamed and streamed[-1]):
        emit(completion.text)
    return completion
