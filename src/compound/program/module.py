"""Programs: parameters plus ``forward``.

A ``Module`` is composed in ordinary Python. Its parameters (each ``Predict``'s instructions, demos and
model) are named by where they sit in the program and can be inspected, changed, saved and loaded.
Saved programs are versioned JSON, never pickle. A file is checked against a schema (pydantic) before
anything is set: a wrong type is reported naming the file and the parameter. A file (version 2) also
names the class of each step that is compound's own (``modules``): a step that an optimizer turned into a
subclass (a ``Predict`` into a ``KNNPredict``) is turned into it again on load, into the program built by
its constructor; only a subclass of the step the program has, and only a class of compound's. A file may switch a step
only to a model of the catalogue (an embedded model, ``scripted``, or a name given to
``register_model``); pointing it at a remote backend (``openai:...``) or a model file needs
``Module.load(path, trust_remote=True)``.

Write ``forward`` (sync) or ``aforward`` (async), or both; the other is derived. Every call of a module
is a ``step`` span in the trace, with its inputs and outputs.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from compound.core.concurrency import run_sync
from compound.core.errors import ConfigurationError, InputTypeError
from compound.store.traces import span

FORMAT = "compound.program"
VERSION = 2
#: migrations from older file versions: MIGRATIONS[v] turns a version-v document into version v+1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: lambda state: {**state, "version": 2, "modules": {}},  # version 1 named no step's class
}


class Module:
    """Base class of programs and steps."""

    #: the names of this module's own parameters (attributes saved with the program)
    parameter_names: tuple[str, ...] = ()
    #: the type a saved file must give each parameter (checked strictly on load; unlisted ones: any JSON)
    parameter_types: dict[str, Any] = {}
    #: attributes that are run-time state, not configuration (left out of the fingerprint)
    runtime_attrs: tuple[str, ...] = ()

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

    def _check_parameter(self, name: str, value: Any) -> str | None:
        """A hook for loading: what is wrong with ``value`` for parameter ``name`` beyond its type (a demo
        that does not fit the step's signature, say), or None. Called before anything is set."""
        return None

    def _init_converted(self) -> None:
        """A hook for loading: set the defaults of what this class adds to its base class, on a step that
        was built as the base class and is being turned into this one (see the module docstring)."""

    def get_parameter(self, name: str) -> Any:
        return getattr(self, name)

    def set_parameter(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def identity(self) -> dict[str, Any]:
        """Everything that changes what the program answers, as plain values: every step's and strategy's
        full configuration (see ``compound.core.fingerprint``) and the prompt format's version."""
        from compound.core.fingerprint import plain
        from compound.models.typed import PROMPT_VERSION

        return {"program": plain(self), "prompt_version": PROMPT_VERSION}

    def state(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "program": type(self).__qualname__,
            "class": class_path(type(self)),
            "modules": {path: class_path(type(m)) for path, m in self.named_modules() if path and _ours(type(m))},
            "parameters": self.named_parameters(),
        }

    def load_state(self, state: dict[str, Any], source: str = "state", *, trust_remote: bool = False) -> Module:
        """Set the parameters saved in ``state`` (checked first: nothing is set unless all of it is valid)."""
        state = migrate(state, source)
        try:
            saved = SavedProgram.model_validate(state)
        except ValidationError as e:
            raise ConfigurationError(f"{source} is not a valid saved program: {_errors(e)}") from None
        if saved.program != type(self).__qualname__:
            raise ConfigurationError(f"{source} holds a {saved.program!r} program, not a {type(self).__qualname__!r}")
        modules = dict(self.named_modules())
        targets = _conversions(saved.modules, modules, source)
        views = {path: _converted(m, targets[path]) if path in targets else m for path, m in modules.items()}
        known = {_dotted(path, p): m.get_parameter(p) for path, m in views.items() for p in m.parameter_names}
        unknown = set(saved.parameters) - set(known)
        if unknown:
            raise ConfigurationError(f"{source} has parameters this program does not: {sorted(unknown)}")
        updates = []
        for dotted, value in saved.parameters.items():
            path, _, name = dotted.rpartition(".")
            module = views[path]
            expected = module.parameter_types.get(name)
            if expected is not None:
                try:
                    TypeAdapter(expected).validate_python(value, strict=True)
                except ValidationError as e:
                    raise ConfigurationError(
                        f"{source}: parameter {dotted!r} has the wrong type ({_errors(e)}); got {value!r:.80}"
                    ) from None
            problem = module._check_parameter(name, value)
            if problem:
                raise ConfigurationError(f"{source}: parameter {dotted!r}: {problem}")
            if name == "model" and isinstance(value, str) and value != known[dotted] and not trust_remote:
                _check_trusted(value, source, dotted)
            updates.append((modules[path], name, value))
        for path, cls in targets.items():  # everything checked: turn the steps, then set the parameters
            modules[path].__class__ = cls
            modules[path]._init_converted()
        for module, name, value in updates:
            module.set_parameter(name, value)
        return self

    def save(self, path: str | Path) -> Path:
        """Write the program's parameters as versioned JSON (atomically), creating missing folders; a path
        that cannot be written raises ``ConfigurationError`` saying why."""
        from compound.core.savedjson import write_json

        return write_json(path, self.state(), "program", indent=2, default=_json_default)

    @classmethod
    def load(cls, path: str | Path, *args: Any, trust_remote: bool = False, **kwargs: Any) -> Module:
        """Build the program (``cls(*args, **kwargs)``) and load its parameters from ``path``.
        ``trust_remote=True`` lets the file point steps at remote backends or model files."""
        from compound.core.savedjson import read_json

        state = read_json(path, "program file")
        return cls(*args, **kwargs).load_state(state, str(path), trust_remote=trust_remote)


class SavedProgram(BaseModel):
    """The schema of a saved program file (the current version)."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    format: str
    version: int
    program: str
    class_path: str | None = Field(None, alias="class")
    modules: dict[str, str] = {}
    parameters: dict[str, Any]


def class_path(cls: type) -> str:
    """Where a program's class lives, as ``module:qualname`` (a script's file path when run as a script),
    so ``compound serve program.json`` can rebuild the program from its saved file alone."""
    module = cls.__module__
    if module == "__main__":
        main = sys.modules["__main__"]
        module = str(Path(getattr(main, "__file__", "__main__")).resolve())
    return f"{module}:{cls.__qualname__}"


def _dotted(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _ours(cls: type) -> bool:
    return cls.__module__ == "compound" or cls.__module__.startswith("compound.")


def _conversions(saved: dict[str, str], modules: dict[str, Module], source: str) -> dict[str, type[Module]]:
    """The steps to turn into the subclass the file names (path -> class). Only compound's own classes are
    imported; a class that is neither the step's, a subclass nor a base class of it is refused."""
    import importlib

    targets = {}
    for path, where in saved.items():
        module = modules.get(path)
        if module is None or where == class_path(type(module)):
            continue  # a step the program does not have is reported with its parameters
        name, _, qualname = where.partition(":")
        cls: Any = None
        if name == "compound" or name.startswith("compound."):
            try:
                cls = getattr(importlib.import_module(name), qualname, None)
            except ImportError:
                cls = None
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise ConfigurationError(
                f"{source}: step {path!r} is saved as {where!r}, which is not a step class of compound's; "
                f"the program has a {type(module).__name__} there"
            )
        if issubclass(cls, type(module)):
            targets[path] = cls
        elif not issubclass(type(module), cls):
            raise ConfigurationError(
                f"{source}: step {path!r} is saved as a {cls.__name__}, the program has a {type(module).__name__} "
                "there: load it into the program it was saved from"
            )
    return targets


def _converted(module: Module, cls: type[Module]) -> Module:
    """A copy of ``module`` as a ``cls`` (to check a file's parameters against before anything is set)."""
    view = cls.__new__(cls)
    view.__dict__.update(module.__dict__)
    view._init_converted()
    return view


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'file'}: {err['msg']}" for err in e.errors())


def _check_trusted(model: str, source: str, dotted: str) -> None:
    from compound.models.registry import is_catalogue_model

    if not is_catalogue_model(model):
        raise ConfigurationError(
            f"{source} sets {dotted} to {model!r}, which is a remote backend or a model file outside the "
            "catalogue; a saved program may only switch steps to catalogue models. If you trust this file, "
            "load it with trust_remote=True (Module.load(path, trust_remote=True))."
        )


def migrate(state: dict[str, Any], source: str = "state") -> dict[str, Any]:
    if not isinstance(state, dict) or state.get("format") != FORMAT:  # a list, a string, someone else's JSON
        raise ConfigurationError(f'{source} is not a saved compound program (no "format": "{FORMAT}")')
    version = state.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigurationError(f'{source}: "version" must be a whole number >= 1, got {version!r}')
    if version > VERSION:
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


def _json_default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    raise InputTypeError(f"parameter value {o!r} is not JSON-serializable")
