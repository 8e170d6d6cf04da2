"""Fingerprints: one stable hash of a configuration, the same in every process.

``plain(value)`` turns a configuration into plain JSON values: numbers, strings, lists and dicts as
they are; a function, method or class as ``module:qualname`` (a lambda or nested function also by a hash
of its code, constants and closure, so two different lambdas differ); a pydantic model class as its JSON
schema; a backend as its ``model_id``; any other object as its class plus its public attributes, except
those its class lists in ``runtime_attrs`` (counters, caches). Memory addresses never enter: a ``repr``
is used only for objects with no attributes, with any ``0x...`` address removed.

``fingerprint(*parts)`` is the hash of ``plain(parts)``. Everything that caches or resumes by program
(the table row cache, a job's resume check) uses it, so a change to any setting of any step or strategy
(``max_tokens``, a temperature, requirements, demos, instructions, the model, a strategy's parameters)
changes it, and an unchanged program has the same fingerprint in every process.
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
import math
import re
from pathlib import PurePath
from typing import Any

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
_MAX_DEPTH = 40


def callable_name(fn: Any) -> str:
    """``module:qualname``; for a lambda or a function defined inside another, plus a hash of its code."""
    fn = inspect.unwrap(fn) if callable(fn) else fn
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    name = f"{module}:{qualname}"
    code = getattr(fn, "__code__", None)
    if code is not None and ("<lambda>" in qualname or "<locals>" in qualname):
        closure = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ()) if _filled(c)]
        body = json.dumps([code.co_code.hex(), _plain(code.co_consts, 0, set()), _plain(closure, 0, set())])
        name += "#" + hashlib.sha256(body.encode()).hexdigest()[:12]
    return name


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def plain(value: Any) -> Any:
    """The configuration ``value`` as plain JSON values (see the module docstring)."""
    return _plain(value, 0, set())


def _plain(value: Any, depth: int, seen: set[int]) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, enum.Enum):
        return _plain(value.value, depth + 1, seen)
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(bytes(value)).hexdigest()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1, seen) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1, seen) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v, depth + 1, seen) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, type):
        if hasattr(value, "model_json_schema"):  # a pydantic model class: its schema is what matters
            return {"class": callable_name(value), "schema": value.model_json_schema()}
        return callable_name(value)
    if inspect.isroutine(value) or isinstance(value, __import__("functools").partial):
        if hasattr(value, "func"):  # functools.partial
            return {"partial": callable_name(value.func), "args": _plain([value.args, value.keywords], depth + 1, seen)}
        owner = getattr(value, "__self__", None)
        if owner is not None and not inspect.ismodule(owner) and not isinstance(owner, type):
            return {"method": callable_name(value), "of": _plain(owner, depth + 1, seen)}
        return callable_name(value)
    if hasattr(value, "model_id") and hasattr(value, "_generate"):  # a backend: which model, not its state
        return {"backend": value.model_id}
    if hasattr(value, "model_dump"):  # a pydantic model instance
        return {"class": callable_name(type(value)), "value": value.model_dump(mode="json")}
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return _plain(value.tolist(), depth + 1, seen)
    if isinstance(value, re.Pattern):
        return {"pattern": value.pattern, "flags": value.flags}
    if id(value) in seen:
        return "<cycle>"
    seen = seen | {id(value)}
    attrs = _attributes(value)
    if attrs is None:
        return {"class": callable_name(type(value)), "repr": _ADDRESS.sub("", repr(value))}
    skip = set(getattr(type(value), "runtime_attrs", ()))
    public = {k: v for k, v in attrs.items() if not k.startswith("_") and k not in skip}
    return {"class": callable_name(type(value)), "config": _plain(public, depth + 1, seen)}


def _attributes(value: Any) -> dict[str, Any] | None:
    attrs = dict(getattr(value, "__dict__", {}))
    for cls in type(value).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if isinstance(slot, str) and hasattr(value, slot) and slot != "__dict__":
                attrs.setdefault(slot, getattr(value, slot))
    return attrs if attrs or hasattr(value, "__dict__") else None


def fingerprint(*parts: Any) -> str:
    """A stable hash of ``parts`` as plain values: equal configurations, equal fingerprints, in any process."""
    blob = json.dumps(plain(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]
