"""Scoped model overrides and the switch that forbids real model calls, both held in ``ContextVar``s.

``compound.testing.override(models=...)`` sets them for a block; ``get_model`` consults the override
first, and ``Backend.generate``/``agenerate`` refuse to start a call on a real backend (anything not
``simulated``, such as llama.cpp or an OpenAI-compatible server) while model requests are forbidden.
Cache hits are served either way: they make no call. Outside any block the switch follows the
``COMPOUND_ALLOW_MODEL_REQUESTS`` environment variable (default: allowed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from compound.core.errors import ModelRequestsForbiddenError

if TYPE_CHECKING:
    from compound.models.base import Backend

#: the default outside any ``override(allow_model_requests=...)`` block
ALLOW_MODEL_REQUESTS = os.environ.get("COMPOUND_ALLOW_MODEL_REQUESTS", "1").lower() not in {"0", "false", "no"}

#: a backend that replaces every model, or model spec -> backend; None when nothing is overridden
models_override: ContextVar[Backend | Mapping[str, Backend] | None] = ContextVar("compound_models", default=None)
allow_override: ContextVar[bool | None] = ContextVar("compound_allow_model_requests", default=None)


def overridden(model: Any) -> Backend | None:
    """The backend that replaces ``model`` (a spec string, None for the default, or a backend) here."""
    replacement = models_override.get()
    if replacement is None:
        return None
    if isinstance(replacement, Mapping):
        if model is None:
            from compound.core.settings import get_settings

            model = get_settings().model
        key = model if isinstance(model, str) else getattr(model, "model", None)
        return replacement.get(key) if isinstance(key, str) else None
    return replacement


def check_allowed(backend: Backend) -> None:
    """Raise if a real model call may not start here."""
    if backend.simulated:
        return
    allowed = allow_override.get()
    if not (ALLOW_MODEL_REQUESTS if allowed is None else allowed):
        raise ModelRequestsForbiddenError(backend.model_id)
