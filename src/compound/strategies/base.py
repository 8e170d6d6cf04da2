"""What every strategy returns: every candidate, its validations, calls and usage, and which one was chosen.

Costs are visible: ``Candidate.calls`` counts the model calls a candidate took (its parse repairs
included), ``StrategyResult.calls`` and ``calls_per_candidate`` add them up, and every ``candidate`` span
in the trace records them. ``Single`` is the strategy of a step that has none: one greedy candidate, so a
step with and without a strategy takes the same path and gives the same trace tree and errors.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from compound.control.requirements import Level, Requirement, Validation, validate_all
from compound.core.types import Generation, Message
from compound.core.usage import Usage, sum_usage
from compound.store.traces import span

#: draws candidate ``index``; ``feedback`` are extra messages (a failed attempt and its reasons)
Sampler = Callable[[int, tuple[Message, ...]], Awaitable["Candidate"]]


@dataclass
class Candidate:
    index: int
    value: Any = None
    text: str = ""  # the raw reply the value was parsed from
    generations: list[Generation] = field(default_factory=list)
    validations: list[Validation] = field(default_factory=list)
    error: str | None = None  # set when the reply could not be parsed at all

    @property
    def passed(self) -> bool:
        """Every MUST requirement holds (and the reply parsed)."""
        return self.error is None and all(v.passed for v in self.validations if v.level is Level.MUST)

    @property
    def usage(self) -> Usage:
        return sum_usage(g.usage for g in self.generations)

    @property
    def calls(self) -> int:
        """Model calls this candidate took (cache hits included), parse repairs and reasoning included."""
        return len(self.generations)

    @property
    def logprob_confidence(self) -> float | None:
        """exp(mean token logprob) of the reply, where the backend returned logprobs."""
        lps = self.generations[-1].logprobs if self.generations else None
        return math.exp(sum(lps) / len(lps)) if lps else None

    def rank(self) -> tuple:
        """MUST first, then SHOULD, then mean score: higher is better."""
        must = sum(v.passed for v in self.validations if v.level is Level.MUST)
        should = sum(v.passed for v in self.validations if v.level is Level.SHOULD)
        mean = sum(v.score for v in self.validations) / len(self.validations) if self.validations else 0.0
        return (self.error is None, self.passed, must, should, mean, -self.index)

    def failures(self) -> list[Validation]:
        return [v for v in self.validations if not v.passed]

    def to_dict(self) -> dict[str, Any]:
        value = self.value.model_dump(mode="json") if hasattr(self.value, "model_dump") else self.value
        return {
            "index": self.index,
            "value": value,
            "text": self.text,
            "error": self.error,
            "passed": self.passed,
            "validations": [v.to_dict() for v in self.validations],
            "calls": self.calls,
            "usage": self.usage.to_dict(),
            "call_ids": [g.call_id for g in self.generations],
        }


@dataclass
class StrategyResult:
    strategy: str
    candidates: list[Candidate]
    chosen: int
    note: str = ""
    confidence: float | None = None  # agreement, best score or verifier score, where the strategy has one

    @property
    def best(self) -> Candidate:
        return self.candidates[self.chosen]

    @property
    def value(self) -> Any:
        return self.best.value

    @property
    def passed(self) -> bool:
        return self.best.passed

    @property
    def usage(self) -> Usage:
        return sum_usage(c.usage for c in self.candidates)

    @property
    def calls_per_candidate(self) -> list[int]:
        return [c.calls for c in self.candidates]

    @property
    def calls(self) -> int:
        """Every model call the strategy made, over all candidates."""
        return sum(self.calls_per_candidate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "chosen": self.chosen,
            "passed": self.passed,
            "note": self.note,
            "confidence": self.confidence,
            "calls": self.calls,
            "calls_per_candidate": self.calls_per_candidate,
            "candidates": [c.to_dict() for c in self.candidates],
        }


class Strategy:
    """Base class. ``arun`` draws candidates through ``sample`` and returns a ``StrategyResult``."""

    name = "strategy"

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        raise NotImplementedError

    async def candidate(
        self,
        sample: Sampler,
        index: int,
        feedback: tuple[Message, ...],
        requirements: list[Requirement],
        inputs: dict[str, Any],
    ) -> Candidate:
        """Draw one candidate and validate it, inside a traced ``candidate`` span."""
        with span("candidate", f"candidate #{index}", strategy=self.name) as s:
            cand = await sample(index, feedback)
            if cand.error is None and requirements:
                cand.validations = await validate_all(requirements, cand.value, inputs)
            return self.recorded(s, cand)

    @staticmethod
    def recorded(s: Any, cand: Candidate) -> Candidate:
        """Write a candidate (its value, validations and calls) on its span."""
        s.attrs.update(cand.to_dict())
        if not cand.passed:
            s.status = "rejected"
        return cand

    def finish(self, candidates: list[Candidate]) -> StrategyResult:
        """Choose the first passing candidate, else the best failing one by MUST-then-SHOULD, and say so."""
        passing = [c for c in candidates if c.passed]
        if passing:
            best = max(passing, key=Candidate.rank)
            note = f"candidate {best.index} meets every MUST requirement"
        else:
            best = max(candidates, key=Candidate.rank)
            failed = "; ".join(v.reason for v in best.failures()) or best.error or ""
            note = f"no candidate met every MUST requirement; returning the best failing one ({best.index}): {failed}"
        return StrategyResult(self.name, candidates, candidates.index(best), note)


class Single(Strategy):
    """One greedy candidate: what a step without a strategy runs. Its confidence is the reply's token
    probability where the backend gives logprobs. ``run`` draws it without an event loop."""

    name = "single"

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        return self.chosen(await self.candidate(sample, 0, (), requirements, inputs))

    def run(self, sample: Callable[[int, tuple[Message, ...]], Candidate]) -> StrategyResult:
        """The same, synchronously, for a step without requirements (they need a strategy)."""
        with span("candidate", "candidate #0", strategy=self.name) as s:
            return self.chosen(self.recorded(s, sample(0, ())))

    def chosen(self, cand: Candidate) -> StrategyResult:
        result = self.finish([cand])
        result.confidence = cand.logprob_confidence
        return result
