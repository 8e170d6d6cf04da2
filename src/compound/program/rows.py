"""How a table row is shown to a model, the one format every table operator and student shares.

A row is rendered as ``column: value`` lines, in the order of the columns given, empty cells left out
(``is_missing``); ``RowInput`` is the input of a step that reads one rendered row; ``parse_row`` reads the
text back (numbers as floats, the rest as text), as the tabular student does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RowInput(BaseModel):
    row: str = Field(description="the table row, one 'column: value' per line")


def render_row(row: Any, columns: list[str]) -> str:
    """The row's cells as ``column: value`` lines (empty cells left out)."""
    return render_values(columns, [row[c] for c in columns])


def render_values(columns: list[str], values: Any) -> str:
    """``render_row`` for the row's values given in the order of ``columns`` (a tuple from ``itertuples``)."""
    return "\n".join(f"{c}: {v}" for c, v in zip(columns, values, strict=True) if not is_missing(v))


def parse_row(text: str) -> dict[str, Any]:
    """``"a: 1\\nb: x"`` -> {"a": 1.0, "b": "x"}: numbers as floats, the rest as text."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value.strip()
    return out


def is_missing(value: Any) -> bool:
    """An empty cell: None, NaN, or text that is empty or only spaces (``NA`` and ``null`` are text)."""
    try:
        return value is None or value != value or (isinstance(value, str) and not value.strip())
    except Exception:
        return False


__all__ = ["RowInput", "render_row", "render_values", "parse_row", "is_missing"]
