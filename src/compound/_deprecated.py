"""Old names: each still resolves, to the same object as its new name, and every use warns.

The warning is a ``DeprecationWarning`` that names the new name and the release that removes the old one;
``docs/changelog.md`` lists every old name. Imported only when an old name is used, so ``import compound``
does not pay for it.
"""

from __future__ import annotations

import warnings
from typing import Any

#: the release that removes the names deprecated in this one
REMOVED_IN = "0.3.0"


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (both as the user writes them)."""
    warnings.warn(
        f"{old} is deprecated and will be removed in compound {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def resolve_old(package: str, name: str, entry: tuple[str, str]) -> Any:
    """The object an old name of ``package`` stands for (``entry``: its target and its new name), warning."""
    from compound._lazy import resolve

    target, new = entry
    warn_renamed(f"{package}.{name}", new, stacklevel=4)
    return resolve(target, name)
