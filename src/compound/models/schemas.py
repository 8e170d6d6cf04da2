"""JSON schemas as compound decodes them: checked, closed, and guarded so that a small model can meet them.

Guarantees:

- ``check_json_schema`` refuses anything that is not a JSON Schema (draft 2020-12) with an error that
  names where it is wrong and how to fix it.
- ``closed_schema``: every object that lists its ``properties`` and does not state
  ``additionalProperties`` allows no other keys, as OpenAI's strict mode does. JSON Schema (and
  llama.cpp's grammar converters) allow extra keys unless told otherwise, so a constrained small model
  can invent keys after the real ones until it runs out of tokens. An object that states
  ``additionalProperties`` (true, false or a schema) keeps what it says; the branches of an ``allOf``
  (and the object holding them) stay open, since closing each branch would refuse every value. Pydantic
  outputs and user-written schemas (``call_typed(dict)``, ``compound ask --schema``, the server's
  ``response_format``) all go through it.
- ``decoding_schema`` adds the guards a grammar needs for small models, for decoding only (a reply is
  validated against the closed schema, not the guards): the strings that have no ``maxLength``, ``enum``,
  ``const``, ``pattern`` or ``format`` share ``STRING_CHARS_PER_TOKEN * max_tokens`` characters (about
  half the token budget) as their ``maxLength``, so a runaway string ends and the object can still close;
  an array without ``maxItems`` gets ``ARRAY_MAX_ITEMS``.
  Whitespace is bounded by the engines themselves (one space, or a newline and at most 20 spaces or
  tabs; see ``compound.models.engines``).
- ``find_loop`` finds a reply that ends in runaway repetition (the same run of words, or of characters,
  at least ``LOOP_MIN_REPEATS`` times in a row), so an error can say so and a repair can ask for no
  repeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compound.core.errors import ConfigurationError

#: a string without a stated bound gets maxLength = this many characters per token of ``max_tokens``
STRING_CHARS_PER_TOKEN = 2
#: the items of an array count as this many strings when the strings share the characters
ARRAY_ITEM_SLOTS = 4
#: an array that states no ``maxItems`` gets this one for decoding (a small model can list the same item forever)
ARRAY_MAX_ITEMS = 16
_STRING_BOUNDS = ("maxLength", "enum", "const", "pattern", "format")
#: keys whose value maps names to subschemas (the names are not schemas themselves)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def check_json_schema(schema: Any, what: str = "the schema") -> dict[str, Any]:
    """``schema`` if it is a JSON Schema (draft 2020-12); else a ``ConfigurationError`` saying where not."""
    import jsonschema

    if not isinstance(schema, dict):
        raise ConfigurationError(
            f"{what} is not a JSON Schema: a schema is a JSON object, not {type(schema).__name__}; "
            'give one such as {"type": "object", "properties": {"name": {"type": "string"}}}'
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(map(str, e.path)) or "the top level"
        raise ConfigurationError(
            f"{what} is not a valid JSON Schema (at {where}: {e.message}); fix the schema (draft 2020-12)"
        ) from None
    return schema


def _walk(schema: Any, change: Any, open_here: bool = False) -> Any:
    """A copy of ``schema`` with ``change(node, open_here)`` applied to every subschema, bottom up."""
    if isinstance(schema, list):
        return [_walk(s, change, open_here) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in _SCHEMA_MAPS and isinstance(v, dict):
            out[k] = {name: _walk(sub, change) for name, sub in v.items()}
        else:
            out[k] = _walk(v, change, open_here=k == "allOf")
    return change(out, open_here)


def _close(node: dict[str, Any], open_here: bool) -> dict[str, Any]:
    if "properties" in node and "additionalProperties" not in node and "allOf" not in node and not open_here:
        node["additionalProperties"] = False
    return node


def closed_schema(schema: Any) -> Any:
    """A copy of a JSON schema in which every object that lists its properties allows no others
    (unless it says ``additionalProperties``; see the module's guarantees)."""
    return _walk(schema, _close)


def _is_string(node: dict[str, Any]) -> bool:
    types = node.get("type")
    return types == "string" or (isinstance(types, list) and "string" in types)


def _unbounded_string(node: Any) -> bool:
    return isinstance(node, dict) and _is_string(node) and not any(k in node for k in _STRING_BOUNDS)


def _string_slots(schema: Any, weight: int = 1) -> int:
    """How many unbounded strings a reply may hold, an array's items counting ``ARRAY_ITEM_SLOTS`` each."""
    if isinstance(schema, list):
        return sum(_string_slots(s, weight) for s in schema)
    if not isinstance(schema, dict):
        return 0
    own = weight if _unbounded_string(schema) else 0
    inner = 0
    for k, v in schema.items():
        if k in _SCHEMA_MAPS and isinstance(v, dict):
            inner += sum(_string_slots(sub, weight) for sub in v.values())
        elif k in ("items", "prefixItems"):
            inner += _string_slots(v, weight * ARRAY_ITEM_SLOTS)
        elif isinstance(v, dict | list):
            inner += _string_slots(v, weight)
    return own + inner


def decoding_schema(schema: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """``schema`` with a ``maxLength`` on every unbounded string, for a reply of at most ``max_tokens``:
    the strings share ``STRING_CHARS_PER_TOKEN * max_tokens`` characters (about half the tokens), an
    array's items counting as ``ARRAY_ITEM_SLOTS`` strings each, and none gets fewer than 16."""
    bound = max(16, STRING_CHARS_PER_TOKEN * max_tokens // max(1, _string_slots(schema)))

    def guard(node: dict[str, Any], _: bool) -> dict[str, Any]:
        if _unbounded_string(node):
            node["maxLength"] = bound
        if node.get("type") == "array" and "maxItems" not in node:
            node["maxItems"] = ARRAY_MAX_ITEMS
        return node

    return _walk(schema, guard)


#: a loop is a run of text repeated at least this many times in a row at the end of a reply
LOOP_MIN_REPEATS = 4
_LOOP_MIN_CHARS = 24  # the repeated part, all repeats together, is at least this long


@dataclass(frozen=True)
class Loop:
    """Runaway repetition at the end of a reply: ``unit`` written ``repeats`` times from ``start``."""

    unit: str
    repeats: int
    start: int

    def describe(self) -> str:
        shown = self.unit if len(self.unit) <= 60 else self.unit[:57] + "..."
        return f"it repeated {shown!r} {self.repeats} times"


def find_loop(text: str, min_repeats: int = LOOP_MIN_REPEATS) -> Loop | None:
    """The repetition the reply ends in, or None.

    Finds the shortest period (1 to 400 characters) with which the end of ``text`` repeats itself at
    least ``min_repeats`` times in a row, covering at least 24 characters (a cut reply may end partway
    through one more repeat): the shape of a small model stuck in a loop (the same key and value over
    and over, ``"a", "a", ...``). Looks at the last 4,000 characters only."""
    tail = text[-4000:]
    n = len(tail)
    for period in range(1, min(400, n // min_repeats) + 1):
        j = n - 1
        while j >= period and tail[j] == tail[j - period]:
            j -= 1
        run = n - 1 - j + period  # characters at the end that repeat with this period
        repeats = run // period
        if repeats < min_repeats or run < _LOOP_MIN_CHARS:
            continue
        start = n - run
        unit = tail[start : start + period]
        if not unit.strip():
            return None  # whitespace only: bounded by the grammar, not a loop of content
        return Loop(unit, repeats, len(text) - n + start)
    return None
