"""Which failures of a remote model call are worth sending again, and after how long.

Guarantees: only 429 (rate limited), 503 (overloaded), timeouts and dropped connections are retryable.
Everything else — 400, 404, 422, a 500 (validation error or crash) — fails at once, as a ``BackendError``
that carries the HTTP ``status``, ``retryable=False`` and the server's own message. A retry waits what
the server asked for (``Retry-After`` in seconds or as an HTTP date, or ``retry-after-ms``), capped at
``MAX_WAIT_S``; without one, exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from typing import Any

from compound.core.errors import BackendError

RETRYABLE_STATUS = frozenset({429, 503})
MAX_WAIT_S = 60.0


def server_message(exc: Any) -> str:
    """What the server said, without the client's wrapping."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or body.get("error")
        return message if isinstance(message, str) else json.dumps(body, default=str)
    if isinstance(body, str) and body:
        return body
    response = getattr(exc, "response", None)
    text = getattr(response, "text", "") if response is not None else ""
    return text or str(exc)


def classify(exc: Exception, where: str) -> BackendError:
    """The openai client's exception as a ``BackendError`` with ``status`` and ``retryable`` set."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return BackendError(f"{where} timed out: {exc}", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return BackendError(f"{where}: connection failed: {exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        hint = " (is the model name one the server serves?)" if status == 404 else ""
        return BackendError(
            f"{where} answered {status}: {server_message(exc)}{hint}",
            status=status,
            retryable=status in RETRYABLE_STATUS,
        )
    return BackendError(f"{where} failed: {exc}")


def retry_after_s(headers: Any) -> float | None:
    """The wait a response asks for, in seconds, or None."""
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def retry_delay(exc: Exception, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based) of a retryable failure."""
    response = getattr(exc, "response", None)
    asked = retry_after_s(getattr(response, "headers", None)) if response is not None else None
    if asked is not None:
        return min(asked, MAX_WAIT_S)
    return min(8.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
