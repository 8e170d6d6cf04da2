"""compound: a framework and runtime for compound AI systems.

    import compound
    with compound.run("demo"), compound.budget(tokens=10_000):
        reply = compound.get_model("smollm2-135m").generate("Name a city in France.")

Names are imported lazily, so ``import compound`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # settings
    "configure": "compound.core.settings",
    "context": "compound.core.settings",
    "get_settings": "compound.core.settings",
    "Settings": "compound.core.settings",
    "Price": "compound.core.settings",
    # budgets and usage
    "budget": "compound.core.budget",
    "Budget": "compound.core.budget",
    "track_usage": "compound.core.usage",
    "Usage": "compound.core.usage",
    # errors
    "CompoundError": "compound.core.errors",
    "BudgetExceededError": "compound.core.errors",
    "BackendError": "compound.core.errors",
    "OutputParseError": "compound.core.errors",
    "ModelNotInstalledError": "compound.core.errors",
    "ConfigurationError": "compound.core.errors",
    # types
    "Message": "compound.core.types",
    "Request": "compound.core.types",
    "Generation": "compound.core.types",
    # models
    "Backend": "compound.models.base",
    "get_model": "compound.models.registry",
    "register_model": "compound.models.registry",
    "ScriptedBackend": "compound.models.scripted",
    "LlamaCppBackend": "compound.models.llama_cpp",
    "OpenAIBackend": "compound.models.openai_compat",
    # typed calls and concurrency
    "call_typed": "compound.program.typed",
    "acall_typed": "compound.program.typed",
    "gather": "compound.core.concurrency",
    "run_sync": "compound.core.concurrency",
    # distillation
    "Distill": "compound.optimize.distill.pipeline",
    # traces
    "run": "compound.store.traces",
    "span": "compound.store.traces",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compound' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
