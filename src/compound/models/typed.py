"""Typed calls: a reply constrained to a JSON schema, parsed into a value, repaired if it fails.

On llama.cpp the schema becomes a grammar that decoding must follow; on OpenAI-compatible servers it is
sent as the structured-output parameter. A value of one free-text field may instead be asked for as plain
text (``TextOutput``): no schema is sent, since free text has nothing to constrain, and the whole reply,
stripped, is the field's value. A reply that still fails to parse gets ``parse_repairs`` repair
attempts (default 1: the model sees its reply and the validation errors), each a call of its own and
counted as one, then an ``OutputParseError`` that carries the raw text and every generation.

The attempt logic is written once as a generator that yields requests and receives generations, so the
sync and async drivers share it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError, create_model

from compound.core.errors import ConfigurationError, InputError, InputTypeError, OutputParseError
from compound.core.protocol import adrive, drive
from compound.core.types import Generation, Message, Request, as_messages
from compound.core.usage import Usage, sum_usage
from compound.models.base import Backend, build_request
from compound.models.registry import get_model
from compound.models.schemas import check_json_schema, closed_schema, decoding_schema, find_loop

T = TypeVar("T")


class OutputSpec(Generic[T]):
    """How to constrain and parse a reply. ``parse`` raises ``ValueError`` with a readable reason;
    ``render`` writes a value as a reply would (a demo's answer, a training target)."""

    schema: dict[str, Any]
    constrained = True  # whether the schema is sent with the request (a grammar on llama.cpp)
    instruction_last = False  # whether the task's instruction follows the input (else it leads, as system)

    @functools.cached_property
    def instruction(self) -> str:
        return describe_schema(self.schema)

    @functools.cached_property
    def repair(self) -> str:
        return REPAIR_INSTRUCTION

    def decoding_schema(self, max_tokens: int) -> dict[str, Any]:
        """The schema sent with a request for at most ``max_tokens``: ``schema`` with the guards of
        ``schemas.decoding_schema`` (memoized, so equal requests carry the same schema object)."""
        memo: dict[int, dict[str, Any]] = self.__dict__.setdefault("_decoding_schemas", {})
        if max_tokens not in memo:
            memo[max_tokens] = decoding_schema(self.schema, max_tokens)
        return memo[max_tokens]

    def parse(self, text: str) -> T:
        raise NotImplementedError

    def partial(self, text: str) -> Any:
        """What a reply cut short so far holds (while it streams): the JSON parsed leniently (an unclosed
        string, array or object taken as it stands), or None before anything parses. Not validated:
        only the whole reply is (``parse``)."""
        try:
            return pydantic_core.from_json(text, allow_partial="trailing-strings")
        except ValueError:
            return None

    def render(self, value: Any) -> str:
        return value.model_dump_json() if isinstance(value, BaseModel) else json.dumps(value)


class PydanticOutput(OutputSpec[T]):
    def __init__(self, model: type[T]) -> None:
        self.model = model
        self.schema = closed_schema(model.model_json_schema())  # type: ignore[attr-defined]

    def parse(self, text: str) -> T:
        try:
            return self.model.model_validate_json(text)  # type: ignore[attr-defined]
        except ValidationError as e:
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, err['loc'])) or 'reply'}: {err['msg']}" for err in e.errors())
            ) from None


class TextOutput(OutputSpec[T]):
    """A pydantic output of exactly one ``str`` field, asked for as plain text.

    Guarantees: no schema goes with the request; the value is the whole reply, stripped; an empty reply
    does not parse (and is repaired like any other). Free text has nothing for a grammar to constrain,
    and on some servers (llama-cpp-python's) decoding under a grammar costs more CPU than the tokens.

    With no schema to hold the reply to its task, the task's instruction is restated after the input
    (the system message keeps the format note), which keeps a small model's plain-text replies short and
    on task (``benchmarks/README.md``; ``benchmarks/peers`` maps through this path)."""

    constrained = False
    instruction_last = True

    def __init__(self, model: type[T]) -> None:
        fields = model.model_fields  # type: ignore[attr-defined]
        if len(fields) != 1 or next(iter(fields.values())).annotation is not str:
            kinds = {k: getattr(f.annotation, "__name__", str(f.annotation)) for k, f in fields.items()}
            raise ConfigurationError(
                f"a plain-text output needs exactly one str field; {model.__name__} has {kinds}: "
                "ask for JSON instead (the default)"
            )
        self.model = model
        self.field = next(iter(fields))
        self.schema = closed_schema(model.model_json_schema())  # type: ignore[attr-defined]

    @functools.cached_property
    def instruction(self) -> str:
        return f"Reply with the {self.field.replace('_', ' ')} only, as plain text: no JSON, no preamble."

    @functools.cached_property
    def repair(self) -> str:
        return "That reply is not valid: {errors}\nReply again with " + f"the {self.field.replace('_', ' ')} only."

    def parse(self, text: str) -> T:
        value = text.strip()
        if not value:
            raise ValueError("the reply is empty")
        try:
            return self.model.model_validate({self.field: value})  # type: ignore[attr-defined]
        except ValidationError as e:
            raise ValueError("; ".join(err["msg"] for err in e.errors())) from None

    def partial(self, text: str) -> Any:
        return {self.field: text.lstrip()}

    def render(self, value: Any) -> str:
        return str(getattr(value, self.field))


class JSONSchemaOutput(OutputSpec[Any]):
    """A plain JSON schema (as ``compound ask --schema``, ``call_typed(dict)`` and the server's
    ``response_format`` take), checked with ``jsonschema``.

    Decoded and validated closed (``schemas.closed_schema``: an object that lists its properties allows
    no others unless it says ``additionalProperties``), as OpenAI's strict mode does; ``closed=False``
    keeps the schema exactly as given."""

    def __init__(self, schema: dict[str, Any], closed: bool = True) -> None:
        import jsonschema

        check_json_schema(schema)
        self.schema = closed_schema(schema) if closed else schema
        self._validator = jsonschema.Draft202012Validator(self.schema)

    def parse(self, text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON: {e}") from None
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
        if errors:
            raise ValueError("; ".join(f"{'/'.join(map(str, e.path)) or 'reply'}: {e.message}" for e in errors))
        return value


def model_with(name: str, fields: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model named ``name`` with ``fields`` (name -> ``(type, default)``; ``...`` for required)."""
    return create_model(name, **fields)


@functools.lru_cache(maxsize=256)
def _pydantic_spec(model: type, fmt: str = "json") -> OutputSpec:
    return TextOutput(model) if fmt == "text" else PydanticOutput(model)


OUTPUT_FORMATS = ("json", "text")


def output_spec(output: Any, fmt: str = "json") -> OutputSpec:
    """The spec for ``output``; ``fmt="text"`` asks for a one-``str``-field pydantic model as plain text."""
    if fmt not in OUTPUT_FORMATS:
        raise ConfigurationError(f"output format must be one of {OUTPUT_FORMATS}, not {fmt!r}")
    if isinstance(output, OutputSpec):
        return output
    if fmt == "text" and not (isinstance(output, type) and issubclass(output, BaseModel)):
        raise ConfigurationError("a plain-text output needs a pydantic model with one str field")
    if isinstance(output, dict):
        return JSONSchemaOutput(output)
    if isinstance(output, type) and issubclass(output, BaseModel):
        return _pydantic_spec(output, fmt)
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
PROMPT_VERSION = 3  # 3: user schemas decoded closed, strings bounded (schemas.decoding_schema)
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


#: a request's ``max_tokens`` when none is given (``Request``'s default)
_DEFAULT_MAX_TOKENS: int = Request.__dataclass_fields__["max_tokens"].default  # type: ignore[assignment]

REPAIR_INSTRUCTION = (
    "That reply is not valid: {errors}\nReply again with only the corrected JSON object, following the schema."
)


def typed_request(spec: OutputSpec, prompt: Any, instructions: str | None = None, **params: Any) -> Request:
    schema_note = spec.instruction
    messages = as_messages(prompt)
    if instructions and spec.instruction_last and messages and messages[-1].role == "user":
        messages = messages[:-1] + (Message("user", f"{messages[-1].content}\n\n{instructions}"),)
        instructions = None
    system = f"{instructions}\n\n{schema_note}" if instructions else schema_note
    if messages and messages[0].role == "system":
        messages = (Message("system", f"{messages[0].content}\n\n{schema_note}"),) + messages[1:]
    else:
        messages = (Message("system", system),) + messages
    if not spec.constrained:
        return build_request(list(messages), params)
    cap = params.get("max_tokens")
    cap = cap if isinstance(cap, int) and cap > 0 else _DEFAULT_MAX_TOKENS  # a bad cap is refused by Request
    return build_request(list(messages), {"json_schema": spec.decoding_schema(cap), **params})


def _failure(parse_repairs: int, request: Request, reply: Generation) -> str:
    """What went wrong, in words: a reply cut at ``max_tokens`` says so, with the cap and the fix."""
    if reply.finish_reason != "length":
        return f"the reply did not validate after {parse_repairs} repair attempt(s)"
    loop = find_loop(reply.text)
    why = f" ({loop.describe()}: a loop the model could not leave)" if loop else ""
    cap = request.max_tokens
    return (
        f"the reply was cut at max_tokens={cap}{why} before it was complete, after {parse_repairs} repair "
        f"attempt(s); raise max_tokens (max_tokens={cap * 2}, or --max-tokens {cap * 2} on the command line), "
        "ask for a shorter reply, or use a larger model"
    )


def _repair_turn(spec: OutputSpec, reply: Generation, errors: str) -> tuple[Message, Message]:
    """The model's reply and the repair request; a looping reply is shown only up to its loop."""
    loop = find_loop(reply.text)
    if loop is None:
        return Message("assistant", reply.text), Message("user", spec.repair.format(errors=errors))
    shown = reply.text[: loop.start + len(loop.unit)]
    note = f"{errors} (the reply was cut off: {loop.describe()}; write each field once, do not repeat)"
    return Message("assistant", shown), Message("user", spec.repair.format(errors=note))


def typed_protocol(
    spec: OutputSpec[T], request: Request, parse_repairs: int = 1
) -> Generator[Request, Generation, Typed[T]]:
    """Yield the request, then at most ``parse_repairs`` repair requests; return the parsed value or
    raise ``OutputParseError`` (which carries every generation, so the calls it cost stay visible)."""
    generations: list[Generation] = []
    while True:
        reply = yield request
        generations.append(reply)
        try:
            return Typed(spec.parse(reply.text), generations)
        except ValueError as e:
            errors = str(e)
        if len(generations) > parse_repairs:
            raise OutputParseError(
                _failure(parse_repairs, request, reply),
                reply.text,
                errors,
                [g.text for g in generations],
                generations,
            )
        request = request.with_(messages=request.messages + _repair_turn(spec, reply, errors))


def typed_call(
    output: Any, prompt: Any, instructions: str | None = None, *, parse_repairs: int = 1, **params: Any
) -> Generator[Request, Generation, Typed]:
    """The protocol of one typed call: ``output`` (a pydantic model, a JSON schema or an ``OutputSpec``)
    asked for with ``prompt``; run it with ``core.protocol.drive(protocol, model.generate)`` (sync) or
    ``adrive(protocol, model.agenerate)`` (async)."""
    if parse_repairs < 0:
        raise InputError(f"parse_repairs must be 0 or more, got {parse_repairs}")
    spec = output_spec(output)
    return typed_protocol(spec, typed_request(spec, prompt, instructions, **params), parse_repairs)


def call_typed(
    output: Any,
    prompt: Any,
    *,
    model: str | Backend | None = None,
    instructions: str | None = None,
    parse_repairs: int = 1,
    **params: Any,
) -> Typed:
    """Ask a model for a value of type ``output``, constrained to its schema and validated.

    Args:
        output: a pydantic model class, a JSON schema dict or an ``OutputSpec``.
        prompt: a string, a list of messages (``Message`` or ``{"role", "content"}`` dicts) or a ``Request``.
        model: a model spec or backend; None for the settings' default model.
        instructions: a system instruction, placed before the schema's description.
        parse_repairs: how many times a reply that does not validate is shown back to the model with
            the errors (each one a call of its own).
        **params: generation parameters (``max_tokens``, ``temperature``, ``seed``, ``cache`` ...).

    Returns:
        A ``Typed``: ``.value`` and every generation it took (``.generations``, ``.usage``).

    Raises:
        OutputParseError: no reply validated; it carries the raw text and every generation.
    """
    protocol = typed_call(output, prompt, instructions, parse_repairs=parse_repairs, **params)
    return drive(protocol, get_model(model).generate)


async def acall_typed(output: Any, prompt: Any, *, model: str | Backend | None = None, **options: Any) -> Typed:
    """``call_typed`` on the event loop; the same arguments (``instructions``, ``parse_repairs`` and the
    generation parameters are passed on as keywords)."""
    return await adrive(typed_call(output, prompt, **options), get_model(model).agenerate)
