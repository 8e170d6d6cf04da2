"""Any OpenAI-compatible server: llama.cpp server, vLLM, Ollama, hosted APIs.

Base URL and key come from the settings (``openai_base_url``, ``openai_api_key``) or the environment
(``OPENAI_BASE_URL``, ``OPENAI_API_KEY``). Transient errors (429, 5xx, timeouts, dropped connections)
are retried with exponential backoff by the openai client; requests- and tokens-per-minute limits
are applied before each request.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from compound.core.errors import BackendError, ConfigurationError
from compound.core.settings import Settings, get_settings
from compound.core.types import Completion, Request
from compound.models.base import Backend
from compound.models.ratelimit import RateLimiter


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None) -> None:
        super().__init__(model)
        self._base_url = base_url
        self._api_key = api_key

    _transient = Backend._transient + ("_clients", "_limiters", "_lock")

    def _init_transient(self) -> None:
        super()._init_transient()
        self._clients: dict[Any, Any] = {}
        self._limiters: dict[tuple, RateLimiter] = {}
        self._lock = threading.Lock()

    def _endpoint(self, settings: Settings) -> tuple[str | None, str]:
        base_url = self._base_url or settings.openai_base_url or os.environ.get("OPENAI_BASE_URL")
        key = self._api_key or settings.openai_api_key or os.environ.get("OPENAI_API_KEY")
        if key is None:
            if base_url is None:
                raise ConfigurationError(
                    "the openai backend needs a server: set OPENAI_BASE_URL (and OPENAI_API_KEY for hosted APIs), "
                    "or compound.configure(openai_base_url=..., openai_api_key=...)"
                )
            key = "not-needed"  # local servers accept any key
        return base_url, key

    def _client(self, asynchronous: bool) -> Any:
        import openai

        settings = get_settings()
        base_url, key = self._endpoint(settings)
        loop = id(asyncio.get_running_loop()) if asynchronous else None  # async clients belong to one loop
        ident = (asynchronous, loop, base_url, key, settings.request_timeout_s, settings.max_retries)
        with self._lock:
            client = self._clients.get(ident)
            if client is None:
                cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
                client = self._clients[ident] = cls(
                    base_url=base_url, api_key=key, timeout=settings.request_timeout_s, max_retries=settings.max_retries
                )
        return client

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

    def request_params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.stop:
            params["stop"] = list(request.stop)
        seed = request.seed if request.seed is not None else (request.sample_index if request.temperature > 0 else None)
        if seed is not None:
            params["seed"] = seed
        if request.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.json_schema.get("title", "output"), "schema": request.json_schema},
            }
        if request.grammar is not None:
            params["extra_body"] = {"grammar": request.grammar}  # llama.cpp server; vLLM reads it as guided grammar
        if request.logprobs:
            params["logprobs"] = True
        return params

    @staticmethod
    def _completion(resp: Any) -> Completion:
        choice = resp.choices[0]
        logprobs = None
        if choice.logprobs is not None and choice.logprobs.content:
            logprobs = [float(t.logprob) for t in choice.logprobs.content]
        usage = resp.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
            logprobs=logprobs,
        )

    def _generate(self, request: Request) -> Completion:
        import openai

        settings = get_settings()
        if (lim := self._limiter(settings)) is not None:
            lim.acquire(self.count_prompt_tokens(request) + request.max_tokens)
        try:
            return self._completion(self._client(False).chat.completions.create(**self.request_params(request)))
        except openai.OpenAIError as e:
            raise BackendError(f"{self.model_id} failed after {settings.max_retries} retries: {e}") from e

    async def _agenerate(self, request: Request) -> Completion:
        import openai

        settings = get_settings()
        if (lim := self._limiter(settings)) is not None:
            await lim.aacquire(self.count_prompt_tokens(request) + request.max_tokens)
        try:
            resp = await self._client(True).chat.completions.create(**self.request_params(request))
        except openai.OpenAIError as e:
            raise BackendError(f"{self.model_id} failed after {settings.max_retries} retries: {e}") from e
        return self._completion(resp)
