"""One check for numbers a user gives (limits, counts, thresholds), used by the CLI's options and by the API.

``check_number`` accepts only finite real numbers (NaN and infinities are refused, so that no comparison
can silently switch a limit off), within the bounds asked for, and integers where a count is asked for.
A refused value raises ``ConfigurationError`` naming the option, the rule and the value given.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from compound.core.errors import ConfigurationError


def check_number(
    name: str,
    value: Any,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    integer: bool = False,
) -> Any:
    """Return ``value`` unchanged if it is a finite number within the bounds, else raise ``ConfigurationError``."""
    rules = []
    if at_least is not None:
        rules.append(f">= {at_least:g}")
    if above is not None:
        rules.append(f"> {above:g}")
    if at_most is not None:
        rules.append(f"<= {at_most:g}")
    kind = "a whole number" if integer else "a finite number"
    rule = f"{kind} {' and '.join(rules)}".strip()
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok and integer:
        ok = isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer())
    ok = ok and math.isfinite(value)
    ok = ok and (at_least is None or value >= at_least)
    ok = ok and (above is None or value > above)
    ok = ok and (at_most is None or value <= at_most)
    if not ok:
        raise ConfigurationError(f"{name} must be {rule} (got {value!r})")
    return value


__all__ = ["check_number"]
