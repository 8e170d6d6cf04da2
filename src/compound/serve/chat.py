"""``POST /v1/chat/completions``, OpenAI-compatible, over served programs and models.

Guarantees:
- ``model`` names a served program or a served model; anything else is a 404 that lists them.
- ``n``, ``stop``, ``max_tokens`` (or ``max_completion_tokens``), ``temperature``, ``top_p`` and ``seed``
  are honoured on models. A program chooses its own sampling, so on a program any of them other than
  ``n=1`` is refused with a 400. Every other OpenAI parameter (tools, logprobs, penalties, ...) is
  refused with a 400 naming it: nothing is silently ignored. ``user``, ``metadata`` and ``store`` are
  accepted as labels.
- ``response_format``: ``json_schema`` makes a model's reply JSON valid for the schema (constrained and
  repaired by compound), decoded closed (an object that lists its properties allows no others unless it
  says ``additionalProperties``) unless ``strict`` is ``false``; on a program the output is returned as
  JSON and checked against the schema.
  ``json_object`` asks for any JSON object.
- ``stream: true`` sends Server-Sent Events in OpenAI's chunk format. On a model the tokens are sent as
  the model writes them (``Backend.astream``): a role chunk, a content chunk per delta (``index`` is the
  choice), a finish chunk per choice, a usage chunk when ``stream_options.include_usage`` is set, the
  ``compound`` object on the last chunk, then ``data: [DONE]``. The streamed text is the reply: with a
  ``json_schema`` it is the constrained JSON as generated, and it is not repaired (text already sent
  cannot be taken back): a reply that does not validate ends the stream with an ``error`` event. A
  refusal found before the first token (budget, overload, bad input) is an ordinary 4xx response. A
  program's reply is computed whole and sent as one content chunk (its typed partials stream on
  ``/v1/programs/{name}/stream``). A client that disconnects cancels the generation.
- Every response carries ``compound``: the run id, usage (tokens, CPU seconds, joules, money) and the
  cascade stage that answered.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from compound.core.errors import ConfigurationError
from compound.core.protocol import adrive
from compound.core.types import Message
from compound.models.base import Backend, build_request
from compound.models.schemas import check_json_schema
from compound.models.typed import JSONSchemaOutput, acall_typed, typed_call
from compound.program.streaming import SINK, Partial, streamed_calls
from compound.serve.programs import RequestError, Served
from compound.serve.runtime import output_of

LABELS = {"user", "metadata", "store"}


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]
    name: str | None = None


class JSONSchemaFormat(BaseModel):
    name: str = "output"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The OpenAI chat completions request; parameters compound does not support are refused."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None

    def refuse_unsupported(self) -> None:
        extra = {k for k, v in (self.model_extra or {}).items() if v is not None and k not in LABELS}
        if extra:
            raise RequestError(
                400,
                f"parameter(s) {sorted(extra)} are not supported by compound serve; remove them",
                "unsupported_parameter",
            )


def text_of(m: ChatMessage) -> str:
    if isinstance(m.content, str):
        return m.content
    parts = []
    for part in m.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise RequestError(400, "only text content parts are supported", "unsupported_content")
        parts.append(part["text"])
    return "".join(parts)


def to_messages(req: ChatRequest) -> list[Message]:
    return [Message("system" if m.role == "developer" else m.role, text_of(m)) for m in req.messages]


def requested_schema(req: ChatRequest) -> dict[str, Any] | None:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None or not fmt.json_schema.schema_:
        raise RequestError(400, "response_format json_schema needs json_schema.schema", "invalid_response_format")
    try:
        return check_json_schema(fmt.json_schema.schema_, "the response_format schema")
    except ConfigurationError as e:
        raise RequestError(400, str(e), "invalid_response_format") from None


async def complete_model(backend: Backend, req: ChatRequest) -> list[tuple[str, str]]:
    """``n`` (text, finish_reason) choices from a model."""
    schema = requested_schema(req)
    params: dict[str, Any] = {
        "max_tokens": req.max_completion_tokens or req.max_tokens or 512,
        "temperature": req.temperature if req.temperature is not None else (0.7 if req.n > 1 else 0.0),
    }
    if req.top_p is not None:
        params["top_p"] = req.top_p
    if req.seed is not None:
        params["seed"] = req.seed
    if req.stop:
        params["stop"] = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop)
    messages = to_messages(req)
    fmt = req.response_format.json_schema if req.response_format is not None else None
    output = JSONSchemaOutput(schema, closed=fmt is None or fmt.strict is not False) if schema is not None else None
    choices = []
    sink = SINK.get()  # set when the response streams: each call's deltas go there as they come
    for i in range(req.n):
        if sink is not None:
            call = streamed_calls(backend, None, i, sink)
            if output is not None:  # streamed text cannot be taken back: no repair
                typed = await adrive(typed_call(output, messages, parse_repairs=0, sample_index=i, **params), call)
                gen = typed.generations[-1]
            else:
                gen = await call(build_request(messages, {"sample_index": i, **params}))
            choices.append((gen.text, gen.finish_reason))
        elif output is not None:
            typed = await acall_typed(output, messages, model=backend, sample_index=i, **params)
            choices.append((json.dumps(typed.value), typed.generations[-1].finish_reason))
        else:
            gen = await backend.agenerate(messages, sample_index=i, **params)
            choices.append((gen.text, gen.finish_reason))
    return choices


def check_program_request(req: ChatRequest) -> None:
    given = [
        k
        for k in ("stop", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed")
        if getattr(req, k) is not None
    ]
    if req.n != 1:
        given.append("n")
    if given:
        raise RequestError(
            400,
            f"program {req.model!r} chooses its own sampling; remove {sorted(given)} (they apply to models only)",
            "unsupported_parameter",
        )


def program_reply(served: Served, req: ChatRequest, result: Any) -> str:
    value = output_of(result)
    schema = requested_schema(req)
    if schema is None:
        return served.output_text(value)
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    import jsonschema

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        raise RequestError(
            422,
            f"program {served.name!r} gives outputs of schema {json.dumps(served.outputs.model_json_schema())}, "
            f"which does not fit the requested response_format: {errors[0].message}",
            "schema_mismatch",
        )
    return json.dumps(data)


def completion(req: ChatRequest, choices: list[tuple[str, str]], info: dict[str, Any]) -> dict[str, Any]:
    u = info["usage"]
    return {
        "id": f"chatcmpl-{info['run_id']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}
            for i, (text, finish) in enumerate(choices)
        ],
        "usage": _openai_usage(u),
        "compound": info,
    }


def _openai_usage(u: dict[str, Any]) -> dict[str, int]:
    return {
        "prompt_tokens": u["prompt_tokens"],
        "completion_tokens": u["completion_tokens"],
        "total_tokens": u["total_tokens"],
    }


def sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


async def stream_events(
    req: ChatRequest,
    events: AsyncIterator[Any],
    live: bool,
    outcome: Callable[[Any], tuple[list[tuple[str, str]], dict]],
) -> AsyncIterator[str]:
    """The SSE body from a run's events: its partials (sent as content deltas when ``live``, a model's
    reply) and, last, its outcome (``outcome`` makes it the choices and the ``compound`` object). An error after the first chunk is sent as an
    ``error`` event. Closing this generator (the client went away) closes ``events``, which cancels the run."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = req.model

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return sse({**base, "choices": choices, **extra})

    def choice(i: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": i, "delta": delta, "finish_reason": finish, "logprobs": None}

    started: set[int] = set()
    try:
        async for item in events:
            if isinstance(item, Partial):
                if not live:
                    continue
                if item.candidate not in started:
                    started.add(item.candidate)
                    yield chunk([choice(item.candidate, {"role": "assistant", "content": ""})])
                yield chunk([choice(item.candidate, {"content": item.delta})])
                continue
            choices, info = outcome(item)
            for i, (text, _) in enumerate(choices):
                if i not in started:  # not streamed: the whole text in one chunk
                    yield chunk([choice(i, {"role": "assistant", "content": text})])
            finish = [choice(i, {}, f) for i, (_, f) in enumerate(choices)]
            yield chunk(finish, compound=info)
            if req.stream_options is not None and req.stream_options.include_usage:
                yield chunk([], usage=_openai_usage(info["usage"]), compound=info)
    except RequestError as e:
        yield sse({"error": {"message": str(e), "type": "server_error", "code": e.code, "param": None}})
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield "data: [DONE]\n\n"
