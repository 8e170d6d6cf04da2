"""The in-process inference engines behind ``LlamaCppBackend`` (backend kind ``llama_cpp``).

Two engines run llama.cpp in process; the backend talks to both through this one interface:

- ``xllamacpp`` (the default): llama.cpp's own server, in process, from a prebuilt AVX2 CPU wheel. Nothing
  is compiled at install time, and the wheel has no AMX kernels, so it cannot hit the AMX crash of
  upstream llama.cpp #20824 (``ggml_backend_amx_mul_mat``).
- ``llama-cpp-python``: optional (``pip install 'compound[llama-cpp-python]'``, compiled at install). Loaded
  with extra buffer types off when its build carries AMX kernels, so it is safe on AMX CPUs too.

Guarantees every engine keeps: ``chat`` takes one engine-neutral request (OpenAI chat fields plus
``json_schema`` and ``grammar``) and returns an OpenAI chat-completion dict whose ``usage`` holds the real
prompt and completion token counts; constrained requests are really constrained (grammar-driven
sampling, JSON that may be indented); ``count_prompt_tokens`` never under-counts; the engine's own logs
stay silent unless ``COMPOUND_ENGINE_LOG=1``. ``stream`` takes the same request and a callback: it calls
``emit(delta)`` for each piece of the reply as it is sampled, stops at the next token once ``emit``
answers True (``finish_reason="cancelled"``), and returns the same dict as ``chat`` (the whole text,
real usage).
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from compound.core.errors import ConfigurationError

DEFAULT_ENGINE = "xllamacpp"
#: engine name -> (module, class, pip extra that installs it)
ENGINES: dict[str, tuple[str, str, str]] = {
    "xllamacpp": ("compound.models.engines.xllamacpp", "XLlamaCppEngine", "llama"),
    "llama-cpp-python": ("compound.models.engines.llama_cpp_python", "LlamaCppPythonEngine", "llama-cpp-python"),
}


def engine_log_enabled() -> bool:
    """llama.cpp's own logs (load, per-request timings) are off unless ``COMPOUND_ENGINE_LOG=1``."""
    return os.environ.get("COMPOUND_ENGINE_LOG", "") not in ("", "0")


@dataclass(frozen=True)
class EngineConfig:
    """Everything that decides how a model is loaded."""

    path: Path
    n_ctx: int
    n_threads: int
    lora: tuple[tuple[Path, float], ...] = ()
    logits_all: bool = False
    #: llama.cpp's flash attention: True or False, or None for the engine's own default
    flash_attn: bool | None = None
    #: llama.cpp's polling level for its threads (0 to 100), or None for the engine's default
    poll: int | None = None


def sampling(request: dict[str, Any]) -> dict[str, Any]:
    """The fields every engine takes as they are: messages, length, temperature, top_p, and the stop
    strings and seed where given."""
    out = {k: request[k] for k in ("messages", "max_tokens", "temperature", "top_p")}
    if request.get("stop"):
        out["stop"] = list(request["stop"])
    if request.get("seed") is not None:
        out["seed"] = request["seed"]
    return out


class Engine(ABC):
    """One loaded model. ``chat`` is called from one thread at a time (the backend serializes calls)."""

    name: ClassVar[str]
    #: True when logprobs need the model loaded with ``logits_all=True``
    needs_logits_all: ClassVar[bool] = False

    def __init__(self, config: EngineConfig) -> None:
        self.config = config

    @abstractmethod
    def native_request(self, request: dict[str, Any]) -> Any:
        """The engine's own request for an engine-neutral one (done before timing in benchmarks)."""

    @abstractmethod
    def call_native(self, native: Any) -> dict[str, Any]:
        """Run a native request: the raw engine call, an OpenAI chat-completion dict."""

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.call_native(self.native_request(request))

    def stream(self, request: dict[str, Any], emit: Callable[[str], bool]) -> dict[str, Any]:
        """``chat``, calling ``emit(delta)`` as the reply is sampled; stop once ``emit`` answers True."""
        reply = self.chat(request)
        emit(reply["choices"][0]["message"]["content"] or "")
        return reply

    @abstractmethod
    def count_prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """The prompt's tokens after the chat template, exactly or as an upper bound."""

    def close(self) -> None:  # noqa: B027 (engines without native state need nothing)
        """Free the native model."""

    @classmethod
    @abstractmethod
    def info(cls) -> dict[str, Any]:
        """Version, build and system information (for ``compound doctor``)."""


class Chunks:
    """Assembles OpenAI ``chat.completion.chunk`` dicts into the ``chat`` dict they make (text, finish
    reason, the usage of the chunk that carries it), passing each text delta to ``emit``. ``add`` answers
    True once ``emit`` has: the engine must then stop (return True from its callback, close its iterator),
    and the reply's finish reason is ``cancelled``."""

    def __init__(self, emit: Callable[[str], bool]) -> None:
        self.emit = emit
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: Any = None
        self.cancelled = False

    def add(self, chunk: dict[str, Any]) -> bool:
        if "error" in chunk:
            self.error = chunk
            return True
        self.usage = chunk.get("usage") or self.usage
        for choice in chunk.get("choices") or ():
            self.finish = choice.get("finish_reason") or self.finish
            delta = (choice.get("delta") or {}).get("content") or ""
            if delta:
                self.parts.append(delta)
                self.cancelled = self.cancelled or self.emit(delta)
        return self.cancelled

    def drain(self, chunks: Iterable[dict[str, Any]]) -> Chunks:
        for chunk in chunks:
            if self.add(chunk):
                break
        return self

    def reply(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(self.parts)}
        finish = "cancelled" if self.cancelled else self.finish
        # a stream stopped early gets no usage chunk: each delta is one sampled token
        usage = self.usage or {"prompt_tokens": None, "completion_tokens": len(self.parts)}
        return {"choices": [{"message": message, "finish_reason": finish}], "usage": usage}


def engine_class(name: str) -> type[Engine]:
    """The engine class for a name; a clear error names the engines and the missing install."""
    entry = ENGINES.get(name)
    if entry is None:
        raise ConfigurationError(f"unknown engine {name!r}; the engines are: {', '.join(ENGINES)}")
    module, cls, extra = entry
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as e:
        raise ConfigurationError(
            f"the {name} engine is not installed ({e}): pip install 'compound[{extra}]', "
            f"or use the default engine ({DEFAULT_ENGINE})"
        ) from e


def open_engine(name: str, config: EngineConfig) -> Engine:
    return engine_class(name)(config)


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "Chunks",
    "Engine",
    "EngineConfig",
    "engine_class",
    "engine_log_enabled",
    "open_engine",
]
