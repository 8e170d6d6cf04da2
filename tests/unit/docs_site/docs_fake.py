"""The scripted model of the docs test: every typed call gets a value that fits its schema.

Used in the test process (``tests/unit/test_docs.py``) and, through ``sitecustomize.py`` on the
``PYTHONPATH``, in the ``compound`` subprocesses that the docs' shell blocks start.
"""

import json

import compound


def value_for(schema: dict, defs: dict) -> object:
    """A value that fits a JSON schema (the first enum member, a short text, ...)."""
    if "$ref" in schema:
        return value_for(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        return value_for(schema["anyOf"][0], defs)
    kind = schema.get("type")
    if kind == "object":
        return {k: value_for(v, defs) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [value_for(schema.get("items", {}), defs)]
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind, "Paris")


def reply(request) -> str:
    schema = request.json_schema
    if schema is None:
        return "A short free-text reply."
    return json.dumps(value_for(schema, schema.get("$defs", {})))


def fake() -> compound.ScriptedBackend:
    return compound.ScriptedBackend(reply, model="docs", latency_s=0.001)


def install() -> None:
    """Replace every model of this process by the fake, and forbid real model calls (for good)."""
    from compound.models.override import allow_override, models_override

    models_override.set(fake())
    allow_override.set(False)
