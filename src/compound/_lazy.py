"""Lazy exports: a package's public names, each imported only when first used.

A package lists its public names and where each lives, so ``import compound`` stays fast however
large the public API grows.

An entry maps a public name to ``"module"`` (the name is an attribute of that module),
``"module:attr"`` (the name is that attribute, renamed) or ``"module:"`` (the name is the module itself).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # the typing module is not imported at run time: ``import compound`` stays fast
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that exports ``exports`` lazily."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        value = importlib.import_module(module)
        if not (attr == "" and target.endswith(":")):
            value = getattr(value, attr or name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
