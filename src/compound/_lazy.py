"""Lazy exports: a package's public names, each imported only when first used.

A package lists its public names and where each lives, so ``import compound`` stays fast however
large the public API grows.

An entry maps a public name to ``"module"`` (the name is an attribute of that module),
``"module:attr"`` (the name is that attribute, renamed) or ``"module:"`` (the name is the module itself).

An old name (``deprecated``) still resolves, to the same object as its new name, but each use warns with a
``DeprecationWarning`` that names the new name and the release that removes the old one
(``docs/changelog.md`` lists them). Old names are left out of ``__all__`` and ``dir()``.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # the typing module is not imported at run time: ``import compound`` stays fast
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


#: the release that removes the names deprecated in this one
REMOVED_IN = "0.3.0"


def _resolve(target: str, name: str) -> Any:
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    if not (attr == "" and target.endswith(":")):
        value = getattr(value, attr or name)
    return value


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (both as the user writes them)."""
    import warnings

    warnings.warn(
        f"{old} is deprecated and will be removed in compound {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


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
            target, new = old_names[name]
            warn_renamed(f"{package}.{name}", new)
            return _resolve(target, name)
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = _resolve(target, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
