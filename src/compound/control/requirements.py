"""Requirements: checks on a step's output, at MUST or SHOULD level. Validation returns data (pass or
fail, a score and a reason); strategies decide what to do with it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from compound.core.errors import InputTypeError


class Level(StrEnum):
    MUST = "must"
    SHOULD = "should"


MUST, SHOULD = Level.MUST, Level.SHOULD


@dataclass
class Validation:
    requirement: str
    level: Level
    passed: bool
    score: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "level": self.level.value,
            "passed": self.passed,
            "score": self.score,
            "reason": self.reason,
        }


class Requirement:
    """Base class: override ``validate`` (sync) or ``avalidate`` (async, e.g. an LLM judge)."""

    def __init__(self, description: str, level: Level = MUST) -> None:
        self.description = description
        self.level = Level(level)

    def validate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        raise NotImplementedError

    async def avalidate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        return self.validate(value, inputs)

    def result(self, passed: bool, reason: str = "", score: float | None = None) -> Validation:
        return Validation(
            self.description,
            self.level,
            bool(passed),
            float(passed) if score is None else score,
            reason or ("ok" if passed else self.description),
        )


class Check(Requirement):
    """A Python check. ``fn(value)`` or ``fn(value, inputs)`` returns a bool, a ``(bool, reason)`` pair,
    or a score in [0, 1] (passing at ``threshold``). An exception in the check is a failure with its message."""

    def __init__(
        self, fn: Callable[..., Any], description: str | None = None, level: Level = MUST, threshold: float = 1.0
    ) -> None:
        super().__init__(description or (fn.__doc__ or fn.__name__).strip(), level)
        self.fn = fn
        self.threshold = threshold
        self._wants_inputs = fn.__code__.co_argcount >= 2 if hasattr(fn, "__code__") else False

    def validate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        try:
            out = self.fn(value, inputs) if self._wants_inputs else self.fn(value)
        except Exception as e:
            return self.result(False, f"{self.description}: check raised {type(e).__name__}: {e}", 0.0)
        if isinstance(out, tuple):
            passed, reason = out
            return self.result(bool(passed), str(reason))
        if isinstance(out, bool) or out is None:
            return self.result(bool(out))
        score = float(out)
        return self.result(score >= self.threshold, f"{self.description}: score {score:.2f}", score)


class Regex(Requirement):
    """A regular expression that a string output (or one field of it) must match."""

    def __init__(
        self, pattern: str, field: str | None = None, level: Level = MUST, description: str | None = None
    ) -> None:
        where = f"field {field!r}" if field else "the output"
        super().__init__(description or f"{where} matches /{pattern}/", level)
        self.pattern = re.compile(pattern)
        self.field = field

    def validate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        text = getattr(value, self.field) if self.field else value
        if not isinstance(text, str):
            text = str(text)
        ok = self.pattern.search(text) is not None
        return self.result(ok, "" if ok else f"{self.description}, but got {text[:200]!r}")


class Conforms(Requirement):
    """The output (or one field) validates against a pydantic model or type, e.g. ``conint(ge=0)``."""

    def __init__(
        self, type_: Any, field: str | None = None, level: Level = MUST, description: str | None = None
    ) -> None:
        super().__init__(description or f"{field or 'output'} conforms to {getattr(type_, '__name__', type_)}", level)
        self.adapter = TypeAdapter(type_)
        self.field = field

    def validate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        target = getattr(value, self.field) if self.field else value
        if isinstance(target, BaseModel):
            target = target.model_dump()
        try:
            self.adapter.validate_python(target)
            return self.result(True)
        except ValidationError as e:
            return self.result(False, f"{self.description}: " + "; ".join(err["msg"] for err in e.errors()))


class Verdict(BaseModel):
    reason: str
    passed: bool


class LLMJudge(Requirement):
    """A model judges the output against a criterion and gives a reason first, then a verdict."""

    def __init__(self, criterion: str, model: Any = None, level: Level = SHOULD) -> None:
        super().__init__(criterion, level)
        self.model = model

    def validate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        from compound.core.concurrency import run_sync

        return run_sync(self.avalidate(value, inputs))

    async def avalidate(self, value: Any, inputs: dict[str, Any]) -> Validation:
        from compound.models.typed import acall_typed

        shown = value.model_dump_json() if isinstance(value, BaseModel) else str(value)
        prompt = f"Criterion: {self.description}\n\nInputs: {inputs}\n\nOutput to judge: {shown}\n\nDoes the output meet the criterion?"
        verdict = await acall_typed(
            Verdict, prompt, model=self.model, instructions="You are a strict reviewer.", max_tokens=200
        )
        return self.result(verdict.value.passed, verdict.value.reason)


def as_requirement(r: Any) -> Requirement:
    if isinstance(r, Requirement):
        return r
    if callable(r):
        return Check(r)
    raise InputTypeError(f"{r!r} is not a requirement: pass a Requirement or a function")


async def validate_all(requirements: list[Requirement], value: Any, inputs: dict[str, Any]) -> list[Validation]:
    """Run every requirement (concurrently, so judges overlap) and trace each validation."""
    from compound.store.traces import span

    async def one(req: Requirement) -> Validation:
        with span("validation", req.description, level=req.level.value) as s:
            v = await req.avalidate(value, inputs)
            s.attrs.update(passed=v.passed, score=v.score, reason=v.reason)
            return v

    return list(await asyncio.gather(*(one(r) for r in requirements)))
