"""Programs: parameters plus ``forward``.

A ``Module`` is composed in ordinary Python. Its parameters (each ``Predict``'s instructions, demos and
model) are named by where they sit in the program and can be inspected, changed, saved and loaded.
Saved programs are versioned JSON, never pickle.

Write ``forward`` (sync) or ``aforward`` (async), or both; the other is derived. Every call of a module
is a ``step`` span in the trace, with its inputs and outputs.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from compound.core.concurrency import run_sync
from compound.core.errors import ConfigurationError, InputTypeError
from compound.store.traces import span

FORMAT = "compound.program"
VERSION = 1
#: migrations from older file versions: MIGRATIONS[v] turns a version-v document into version v+1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class Module:
    """Base class of programs and steps."""

    #: the names of this module's own parameters (attributes saved with the program)
    parameter_names: tuple[str, ...] = ()

    @property
    def step_name(self) -> str:
        return type(self).__name__

    # --- calling --------------------------------------------------------------------------------------
    def forward(self, **inputs: Any) -> Any:
        if type(self).aforward is Module.aforward:
            raise NotImplementedError(f"{type(self).__name__} defines neither forward nor aforward")
        return run_sync(self.aforward(**inputs))

    async def aforward(self, **inputs: Any) -> Any:
        if type(self).forward is Module.forward:
            raise NotImplementedError(f"{type(self).__name__} defines neither forward nor aforward")
        ctx = contextvars.copy_context()  # settings, budgets and the current span follow into the thread
        return await asyncio.to_thread(ctx.run, self.forward, **inputs)

    def __call__(self, **inputs: Any) -> Any:
        with span("step", self.step_name, inputs=inputs) as s:
            out = self.forward(**inputs)
            s.attrs["output"] = out
            return out

    async def acall(self, **inputs: Any) -> Any:
        with span("step", self.step_name, inputs=inputs) as s:
            out = await self.aforward(**inputs)
            s.attrs["output"] = out
            return out

    # --- parameters -----------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, value in vars(self).items():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Module):
                yield from value.named_modules(path)
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item.named_modules(f"{path}.{i}")
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield from item.named_modules(f"{path}.{key}")

    def named_parameters(self) -> dict[str, Any]:
        """Every parameter of the program by dotted name, e.g. ``classify.instructions``."""
        out = {}
        for path, module in self.named_modules():
            for p in module.parameter_names:
                out[f"{path}.{p}" if path else p] = module.get_parameter(p)
        return out

    def get_parameter(self, name: str) -> Any:
        return getattr(self, name)

    def set_parameter(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def identity(self) -> dict[str, Any]:
        """Everything that changes what the program answers (for caching whole-program results):
        its parameters, and each step's strategy and settings."""
        steps = {}
        for path, module in self.named_modules():
            strategy = getattr(module, "strategy", None)
            steps[path] = {
                "class": type(module).__qualname__,
                "strategy": None if strategy is None else [type(strategy).__qualname__, _plain(vars(strategy))],
            }
        from compound.program.typed import PROMPT_VERSION

        return {"parameters": self.named_parameters(), "steps": steps, "prompt_version": PROMPT_VERSION}

    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "program": type(self).__qualname__,
            "class": class_path(type(self)),
            "parameters": self.named_parameters(),
        }

    def load_state(self, state: dict[str, Any], source: str = "state") -> Module:
        state = migrate(state, source)
        if state.get("program") != type(self).__qualname__:
            raise ConfigurationError(
                f"{source} holds a {state.get('program')!r} program, not a {type(self).__qualname__!r}"
            )
        modules = dict(self.named_modules())
        known = self.named_parameters()
        unknown = set(state["parameters"]) - set(known)
        if unknown:
            raise ConfigurationError(f"{source} has parameters this program does not: {sorted(unknown)}")
        for dotted, value in state["parameters"].items():
            path, _, name = dotted.rpartition(".")
            modules[path].set_parameter(name, value)
        return self

    def save(self, path: str | Path) -> Path:
        """Write the program's parameters as versioned JSON (atomically)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.state(), indent=2, default=_json_default))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, *args: Any, **kwargs: Any) -> Module:
        """Build the program (``cls(*args, **kwargs)``) and load its parameters from ``path``."""
        path = Path(path)
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigurationError(f"cannot read program file {path}: {e}") from e
        return cls(*args, **kwargs).load_state(state, str(path))


def class_path(cls: type) -> str:
    """Where a program's class lives, as ``module:qualname`` (a script's file path when run as a script),
    so ``compound serve program.json`` can rebuild the program from its saved file alone."""
    module = cls.__module__
    if module == "__main__":
        main = sys.modules["__main__"]
        module = str(Path(getattr(main, "__file__", "__main__")).resolve())
    return f"{module}:{cls.__qualname__}"


def migrate(state: dict[str, Any], source: str = "state") -> dict[str, Any]:
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigurationError(f'{source} is not a saved compound program (no "format": "{FORMAT}")')
    version = state.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ConfigurationError(
            f"{source} was saved by a newer compound (file version {version}, this one reads up to {VERSION}); upgrade compound"
        )
    while version < VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise ConfigurationError(f"{source} has file version {version}, which this compound cannot migrate")
        state = step(state)
        version = state["version"]
    return state


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v) for k, v in d.items()}


def _json_default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    raise InputTypeError(f"parameter value {o!r} is not JSON-serializable")
