"""Plain data passed between programs, backends, the cache and the trace store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from compound.core.errors import InputError, InputTypeError
from compound.core.usage import Usage

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def as_messages(prompt: str | list[Message] | list[dict[str, str]] | tuple) -> tuple[Message, ...]:
    """Accept a string, Message objects or OpenAI-style dicts; return an immutable tuple of Messages."""
    if isinstance(prompt, str):
        return (Message("user", prompt),)
    out = []
    for m in prompt:
        if isinstance(m, Message):
            out.append(m)
        elif isinstance(m, dict) and "role" in m and "content" in m:
            out.append(Message(cast(Role, m["role"]), m["content"]))
        else:
            raise InputTypeError(
                f"cannot use {m!r} as a message: pass a str, a Message or a dict with 'role' and 'content'"
            )
    return tuple(out)


_digests: dict[int, tuple[dict[str, Any], str]] = {}


def schema_digest(schema: dict[str, Any] | None) -> str | None:
    """A short digest of a JSON schema, memoized per schema object (schemas are treated as immutable).
    Property order counts: a constrained reply writes its fields in the schema's order, so two schemas
    that differ only in order are different requests (and replies cached before compound kept that order,
    when every reply came in sorted order, are not served for them)."""
    if schema is None:
        return None
    hit = _digests.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    digest = hashlib.sha256(json.dumps(schema).encode()).hexdigest()[:32]
    if len(_digests) > 1024:
        _digests.clear()
    _digests[id(schema)] = (schema, digest)
    return digest


@dataclass(frozen=True, slots=True)
class Request:
    """One model call. Everything that changes the reply is here, so it can key the cache."""

    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None
    logprobs: bool = False
    sample_index: int = 0
    cache: bool | None = None  # None: use the settings' default

    def __post_init__(self) -> None:
        if self.max_tokens <= 0:
            raise InputError(f"max_tokens must be positive, got {self.max_tokens}")
        if self.json_schema is not None and self.grammar is not None:
            raise InputError("give json_schema or grammar, not both")

    def with_(self, **changes: Any) -> Request:
        return replace(self, **changes)

    def key_fields(self) -> dict[str, Any]:
        """Everything that changes the reply, in canonical order: every dict's keys sorted, so its JSON
        text is the same with or without ``sort_keys`` (``store.cache.cache_key`` relies on it)."""
        return {
            "grammar": self.grammar,
            "json_schema": schema_digest(self.json_schema),
            "logprobs": self.logprobs,
            "max_tokens": self.max_tokens,
            "messages": [{"content": m.content, "role": m.role} for m in self.messages],
            "sample_index": self.sample_index,
            "seed": self.seed,
            "stop": list(self.stop),
            "temperature": self.temperature,
            "top_p": self.top_p,
        }


@dataclass(slots=True)
class Completion:
    """What a backend's ``_generate`` returns: the raw reply and token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    logprobs: list[float] | None = None
    energy_j: float | None = None  # set only by backends that can measure it
    #: what the backend wants the generation and its trace to show, e.g. ``{"constraint": "unconstrained"}``
    #: when a schema or grammar was asked for and the server could not enforce it
    meta: dict[str, Any] = field(default_factory=dict)


def answer_logprobs(content: list[dict[str, Any]]) -> list[float]:
    """The logprobs of the reply's tokens from an OpenAI-shaped ``logprobs.content`` list (the embedded
    engines and llama.cpp's server alike), without a closing end-of-generation token (empty text).

    Where a grammar ends the output, that token is forced: llama.cpp reports how little the model wanted to
    stop there (-12 to -22 seen on smollm2-135m, base and fine-tuned alike, whose top choice was a newline),
    which says nothing about the answer and, in a mean over a short reply, swamps it: every reply of a
    distilled classifier scored about 0.04 however sure it was.
    """
    if content and content[-1].get("token") == "":
        content = content[:-1]
    return [float(t["logprob"]) for t in content]


@dataclass(slots=True)
class Generation:
    """What the public ``generate`` returns: the reply with its usage and provenance."""

    text: str
    model: str
    usage: Usage
    cached: bool = False
    finish_reason: str = "stop"
    logprobs: list[float] | None = None
    call_id: str = ""
    run_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "cached": self.cached,
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
            "call_id": self.call_id,
            "run_id": self.run_id,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Generation:
        return cls(
            text=d["text"],
            model=d["model"],
            usage=Usage.from_dict(d["usage"]),
            cached=d.get("cached", False),
            finish_reason=d.get("finish_reason", "stop"),
            logprobs=d.get("logprobs"),
            call_id=d.get("call_id", ""),
            run_id=d.get("run_id"),
            meta=dict(d.get("meta") or {}),
        )
