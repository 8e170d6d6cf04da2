"""Settings, held in a ``ContextVar`` so they are safe across threads and asyncio tasks.

``configure(...)`` changes the process-wide defaults; ``with context(...)`` overrides them for a block
(and for the tasks and worker threads started inside it through compound), then restores them.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError


def _default_home() -> Path:
    return Path(os.environ.get("COMPOUND_HOME", Path.home() / ".compound"))


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True)
class Settings:
    model: str = "smollm2-135m"
    # the small, medium and large models: what compare, teach, auto and the demo use when none is named
    # (read when they run, so ``configure(large=...)`` changes every default large model at once)
    small: str = "smollm2-135m"
    medium: str = "qwen2.5-coder-0.5b"
    large: str = "qwen2.5-coder-1.5b"
    home: Path = field(default_factory=_default_home)
    cache: bool = True
    trace: bool = True
    max_concurrency: int = 8
    # remote (OpenAI-compatible) servers
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    request_timeout_s: float = 120.0
    max_retries: int = 4
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    # in-process llama.cpp: the engine ("xllamacpp" or "llama-cpp-python"), threads and context
    engine: str = "xllamacpp"
    n_threads: int | None = None
    n_ctx: int = 4096
    # llama.cpp's flash attention: None is the engine's default (xllamacpp: on; llama-cpp-python: off)
    flash_attn: bool | None = None
    # how hard llama.cpp's threads poll for work between steps (0 to 100; None is llama.cpp's 50): polling
    # threads spin on the CPU, so on a loaded machine they count CPU seconds that computed nothing; 0 makes
    # CPU seconds measure the work alone (xllamacpp only)
    poll: int | None = None
    # money: model name -> Price; models not listed cost nothing (local models)
    prices: Mapping[str, Price] = field(default_factory=dict)
    # energy estimates where nothing is measured: watts per busy core, joules per remote token
    watts_per_core: float = 15.0
    joules_per_remote_token: float = 0.3
    # OpenTelemetry: spans are also exported to this OTLP/HTTP endpoint (SQLite stays the default sink)
    otlp_endpoint: str | None = field(default_factory=lambda: os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None)

    @functools.cached_property
    def cache_path(self) -> Path:
        return self.home / "cache.sqlite"

    @functools.cached_property
    def trace_path(self) -> Path:
        return self.home / "traces.sqlite"

    @functools.cached_property
    def models_dir(self) -> Path:
        return self.home / "models"

    def price_for(self, model: str) -> Price:
        return self.prices.get(model, _FREE)


_FREE = Price()
_FIELDS = {f.name for f in fields(Settings)}
_global = Settings()
_override: ContextVar[Settings | None] = ContextVar("compound_settings", default=None)


def _checked(base: Settings, changes: dict[str, Any]) -> Settings:
    unknown = set(changes) - _FIELDS
    if unknown:
        raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; the settings are: {sorted(_FIELDS)}")
    if "home" in changes:
        changes["home"] = Path(changes["home"])
    if "prices" in changes:
        changes["prices"] = {k: v if isinstance(v, Price) else Price(**v) for k, v in dict(changes["prices"]).items()}
    if changes.get("max_concurrency", 1) < 1:
        raise ConfigurationError("max_concurrency must be at least 1")
    if changes.get("poll") is not None and not 0 <= changes["poll"] <= 100:
        raise ConfigurationError(f"poll must be between 0 and 100 (llama.cpp's polling level), got {changes['poll']}")
    return replace(base, **changes)


def get_settings() -> Settings:
    return _override.get() or _global


def configure(**changes: Any) -> Settings:
    """Change the process-wide default settings. Returns the new settings."""
    global _global
    _global = _checked(_global, changes)
    return _global


@contextmanager
def configured(**changes: Any) -> Iterator[Settings]:
    """``configure(**changes)`` for the length of a block (a test, say), then restore the process-wide
    defaults as they were. Unlike ``context``, the change is seen by every thread."""
    global _global
    saved = _global
    try:
        yield configure(**changes)
    finally:
        _global = saved


@contextmanager
def context(**changes: Any) -> Iterator[Settings]:
    """Override settings inside a ``with`` block, for this thread or task only."""
    settings = _checked(get_settings(), changes)
    token = _override.set(settings)
    try:
        yield settings
    finally:
        _override.reset(token)
