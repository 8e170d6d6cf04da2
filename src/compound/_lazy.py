"""Lazy exports: a package's public names, each imported only when first used.

A package lists its public names and where each lives, so ``import compound`` stays fast however
large the public API grows.

An entry maps a public name to ``"module"`` (the name is an attribute of that module),
``"module:attr"`` (the name is that attribute, renamed) or ``"module:"`` (the name is the module itself).

Old names (``deprecated``, see ``compound._deprecated``) resolve and warn; they are not in ``dir()``.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # the typing module is not imported at run time: ``import compound`` stays fast
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def resolve(target: str, name: str) -> Any:
    """The object an entry's target names (``name`` is the attribute when the target names none)."""
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if not (attr == "" and target.endswith(":")):
        value = getattr(value, attr or name)
    return value


def lazy_exports(
    package: str, exports: dict[str, str], deprecated: dict[str, tuple[str, str]] | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that exports ``exports`` lazily.

    ``deprecated`` maps an old name to (its target, as in ``exports``; the new name the warning names).
    """
    namespace = importlib.import_module(package).__dict__
    old_names = deprecated or {}

    def __getattr__(name: str) -> Any:
        if name in old_names:  # never cached: every use warns
            from compound._deprecated import resolve_old

            return resolve_old(package, name, old_names[name])
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = resolve(target, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
