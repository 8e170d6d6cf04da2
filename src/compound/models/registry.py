"""Find a backend by name. Backends register under the ``compound.backends`` entry-point group, so a
separate package can add one; the built-in ones register the same way (see pyproject.toml)."""

from __future__ import annotations

import threading
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from compound.core.errors import ConfigurationError
from compound.core.settings import get_settings
from compound.models.base import Backend
from compound.models.embedded import EMBEDDED
from compound.models.lora import LORA_MARK
from compound.models.override import models_override, overridden

_instances: dict[str, Backend] = {}
_registered: set[str] = set()  # names given by register_model (trusted: the program's own code chose them)
_lock = threading.Lock()


@cache
def backend_kinds() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group="compound.backends")}


def backend_class(kind: str) -> type[Backend]:
    ep = backend_kinds().get(kind)
    if ep is None:
        raise ConfigurationError(
            f"no backend named {kind!r}; installed backends: {', '.join(sorted(backend_kinds())) or 'none'} "
            "(a backend package registers under the 'compound.backends' entry point)"
        )
    return ep.load()  # type: ignore[attr-defined]


def parse_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> (openai, gpt-4o-mini); ``"smollm2-135m"``, a .gguf path, or either with
    LoRA adapters (``"smollm2-135m+lora=/path/adapter.gguf"``, see ``compound.models.lora``) -> llama_cpp."""
    kind, sep, model = spec.partition(":")
    if sep and kind in backend_kinds():
        return kind, model
    base = spec.split(LORA_MARK)[0]
    if base in EMBEDDED or Path(base).suffix.lower() == ".gguf":
        return "llama_cpp", spec
    if spec == "scripted":
        return "scripted", spec
    raise ConfigurationError(
        f"cannot tell which backend serves model {spec!r}: name an embedded model ({', '.join(EMBEDDED)}), "
        f"a .gguf path (either may add +lora=ADAPTER.gguf), or BACKEND:MODEL with BACKEND one of {', '.join(sorted(backend_kinds()))}"
    )


def register_model(name: str, backend: Backend) -> Backend:
    """Give a configured backend a name, so programs, jobs and the CLI can refer to it by that name."""
    with _lock:
        _instances[name] = backend
        _registered.add(name)
    return backend


def is_catalogue_model(spec: str) -> bool:
    """True for models a saved file may name without trust: an embedded model of the catalogue,
    ``scripted``, or a name given to ``register_model``. Remote backends and model files are not."""
    return spec in EMBEDDED or spec in ("scripted", "scripted:scripted") or spec in _registered


def get_model(model: str | Backend | None = None) -> Backend:
    """A backend instance for a model spec (one per spec, so a local model is loaded once).

    Args:
        model: a spec (``"smollm2-135m"``, a ``.gguf`` path, ``"openai:gpt-4o-mini"``, a registered
            name), a backend (returned as is), or None for the settings' default model.

    Returns:
        The backend, or its replacement inside ``compound.testing.override(models=...)``.
    """
    replacement = overridden(model) if models_override.get() is not None else None
    if replacement is not None:
        return replacement
    if isinstance(model, Backend):
        return model
    spec = model or get_settings().model
    with _lock:
        inst = _instances.get(spec)
        if inst is None:
            kind, name = parse_spec(spec)
            cls = backend_class(kind)
            inst = _instances[spec] = cls() if kind == "scripted" else cls(name)
    return inst
