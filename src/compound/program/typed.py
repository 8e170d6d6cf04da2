"""Typed calls: a reply constrained to a JSON schema, parsed into a value, repaired once if it fails.

On llama.cpp the schema becomes a grammar that decoding must follow; on OpenAI-compatible servers it is
sent as the structured-output parameter. A reply that still fails to parse gets one repair attempt (the
model sees its reply and the validation errors), then an ``OutputParseError`` that carries the raw text.

The attempt logic is written once as a generator that yields requests and receives generations, so the
sync and async drivers share it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from compound.core.errors import ConfigurationError, InputTypeError, OutputParseError
from compound.core.types import Generation, Message, Request, as_messages
from compound.core.usage import Usage, sum_usage
from compound.models.base import Backend, build_request
from compound.models.registry import get_model

T = TypeVar("T")


class OutputSpec(Generic[T]):
    """How to constrain and parse a reply. ``parse`` raises ``ValueError`` with a readable reason."""

    schema: dict[str, Any]

    @functools.cached_property
    def instruction(self) -> str:
        return describe_schema(self.schema)

    def parse(self, text: str) -> T:
        raise NotImplementedError


class PydanticOutput(OutputSpec[T]):
    def __init__(self, model: type[T]) -> None:
        self.model = model
        self.schema = model.model_json_schema()  # type: ignore[attr-defined]

    def parse(self, text: str) -> T:
        try:
            return self.model.model_validate_json(text)  # type: ignore[attr-defined]
        except ValidationError as e:
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, err['loc'])) or 'reply'}: {err['msg']}" for err in e.errors())
            ) from None


class JSONSchemaOutput(OutputSpec[Any]):
    """A plain JSON schema (as ``compound ask --schema`` takes), checked with ``jsonschema``."""

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as e:
            where = "/".join(map(str, e.path)) or "the top level"
            raise ConfigurationError(
                f"not a valid JSON Schema (at {where}: {e.message}); fix the schema (draft 2020-12)"
            ) from None
        self.schema = schema
        self._validator = jsonschema.Draft202012Validator(schema)

    def parse(self, text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e}") from None
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            raise ValueError("; ".join(f"{'/'.join(map(str, e.path)) or 'reply'}: {e.message}" for e in errors))
        return value


@functools.lru_cache(maxsize=256)
def _pydantic_spec(model: type) -> PydanticOutput:
    return PydanticOutput(model)


def output_spec(output: Any) -> OutputSpec:
    if isinstance(output, OutputSpec):
        return output
    if isinstance(output, dict):
        return JSONSchemaOutput(output)
    if isinstance(output, type) and issubclass(output, BaseModel):
        return _pydantic_spec(output)
    raise InputTypeError(f"output must be a pydantic model class, a JSON schema dict or an OutputSpec, not {output!r}")


@dataclass
class Typed(Generic[T]):
    """A parsed value with every generation it took (one, or two after a repair)."""

    value: T
    generations: list[Generation] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return len(self.generations) > 1

    @property
    def usage(self) -> Usage:
        return sum_usage(g.usage for g in self.generations)


#: bump when the way typed calls are prompted changes, so whole-program result caches are not reused
PROMPT_VERSION = 2
SCHEMA_INSTRUCTION = "Reply with one JSON object that follows this JSON schema:\n{schema}"


def _describe_type(spec: dict[str, Any]) -> str | None:
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(v) for v in spec["enum"])
    if "const" in spec:
        return f"exactly {json.dumps(spec['const'])}"
    if "anyOf" in spec:
        parts = [_describe_type(s) for s in spec["anyOf"]]
        return None if None in parts else " or ".join(p for p in parts if p)
    t = spec.get("type")
    if t == "array":
        inner = _describe_type(spec.get("items", {}))
        return None if inner is None else f"a list of {inner}"
    simple = {
        "string": "text",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "null",
    }
    if t in simple:
        return simple[t]
    if t == "object" and not spec.get("properties"):
        return "an object"
    return None


def describe_schema(schema: dict[str, Any]) -> str:
    """Say which fields to reply with, in words (small models tend to echo a raw JSON schema back).
    Falls back to the schema itself for nested structures that words would not capture."""
    lines = []
    for name, spec in (schema.get("properties") or {}).items():
        kind = _describe_type(spec)
        if kind is None:
            lines = []
            break
        note = f": {spec['description']}" if spec.get("description") else ""
        lines.append(f'- "{name}": {kind}{note}')
    if not lines:
        return SCHEMA_INSTRUCTION.format(schema=json.dumps(schema, separators=(",", ":")))
    return "Reply with one JSON object with these fields:\n" + "\n".join(lines)


REPAIR_INSTRUCTION = (
    "That reply is not valid: {errors}\nReply again with only the corrected JSON object, following the schema."
)


def typed_request(spec: OutputSpec, prompt: Any, instructions: str | None = None, **params: Any) -> Request:
    schema_note = spec.instruction
    system = f"{instructions}\n\n{schema_note}" if instructions else schema_note
    messages = as_messages(prompt)
    if messages and messages[0].role == "system":
        messages = (Message("system", f"{messages[0].content}\n\n{schema_note}"),) + messages[1:]
    else:
        messages = (Message("system", system),) + messages
    return build_request(list(messages), {"json_schema": spec.schema, **params})


def typed_protocol(spec: OutputSpec[T], request: Request) -> Generator[Request, Generation, Typed[T]]:
    """Yield the request, then at most one repair request; return the parsed value or raise."""
    first = yield request
    try:
        return Typed(spec.parse(first.text), [first])
    except ValueError as e:
        errors = str(e)
    repair = request.with_(
        messages=request.messages
        + (Message("assistant", first.text), Message("user", REPAIR_INSTRUCTION.format(errors=errors)))
    )
    second = yield repair
    try:
        return Typed(spec.parse(second.text), [first, second])
    except ValueError as e:
        raise OutputParseError(
            "the reply did not validate after one repair attempt", second.text, str(e), [first.text, second.text]
        ) from None


def drive(protocol: Generator[Request, Generation, T], model: Backend) -> T:
    """Run a request protocol synchronously."""
    try:
        request = next(protocol)
        while True:
            request = protocol.send(model.generate(request))
    except StopIteration as done:
        return done.value


async def adrive(protocol: Generator[Request, Generation, T], model: Backend) -> T:
    """Run a request protocol on the event loop."""
    try:
        request = next(protocol)
        while True:
            request = protocol.send(await model.agenerate(request))
    except StopIteration as done:
        return done.value


def call_typed(
    output: Any, prompt: Any, *, model: str | Backend | None = None, instructions: str | None = None, **params: Any
) -> Typed:
    """Ask ``model`` for a value of type ``output`` (a pydantic model or a JSON schema)."""
    spec = output_spec(output)
    return drive(typed_protocol(spec, typed_request(spec, prompt, instructions, **params)), get_model(model))


async def acall_typed(
    output: Any, prompt: Any, *, model: str | Backend | None = None, instructions: str | None = None, **params: Any
) -> Typed:
    spec = output_spec(output)
    return await adrive(typed_protocol(spec, typed_request(spec, prompt, instructions, **params)), get_model(model))
