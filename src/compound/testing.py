"""Testing helpers: replace models for a block, and forbid real model calls.

    import compound
    fake = compound.ScriptedBackend(['{"answer": "Paris"}'])
    with compound.testing.override(models=fake, allow_model_requests=False):
        program(question="Capital of France?")     # every model the program asks for is ``fake``

Everything is scoped by ``ContextVar``s (as pydantic-ai's ``override`` is): it holds in the block, in the
asyncio tasks started inside it and in compound's worker threads, and is restored when the block ends,
so nothing leaks between tests. While model requests are forbidden, a real backend (llama.cpp, an
OpenAI-compatible server) raises ``ModelRequestsForbiddenError`` before the call starts; the scripted
backend is always allowed. ``configured(...)`` changes the process-wide settings for a block.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from compound.core.errors import ModelRequestsForbiddenError
from compound.core.settings import configured, context
from compound.models.base import Backend
from compound.models.override import allow_override, models_override

__all__ = ["override", "configured", "ModelRequestsForbiddenError"]


@contextmanager
def override(
    models: Backend | Mapping[str, Backend] | None = None,
    *,
    allow_model_requests: bool | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Replace models, forbid or allow real model calls, and change settings, for one block.

    Args:
        models: one backend that replaces every model the code asks for (by name, by default or as a
            backend object), or a mapping from model spec (``"smollm2-135m"``) to the backend that
            replaces it; other models are left alone. None leaves models as they are.
        allow_model_requests: False forbids calls to real backends inside the block; True allows them;
            None keeps the current rule.
        settings: settings to change inside the block, as ``compound.context(**settings)`` does.

    Returns:
        A context manager; on exit every change is undone.
    """
    with ExitStack() as stack:
        if models is not None:
            token = models_override.set(dict(models) if isinstance(models, Mapping) else models)
            stack.callback(models_override.reset, token)
        if allow_model_requests is not None:
            allow_token = allow_override.set(allow_model_requests)
            stack.callback(allow_override.reset, allow_token)
        if settings:
            stack.enter_context(context(**settings))
        yield
