"""Inference-time compute: draw N candidates in parallel and pick one.

- ``SelfConsistency(n)``: majority vote over normalised answers; the agreement is the confidence.
- ``BestOfN(n, scorer)``: the candidate with the highest score.
- ``VerifyAndSelect(n, requirements)``: the candidate that best meets the requirements (a judge included).

Candidate 0 is greedy, the others sampled; each is its own cache entry (the sample index is in the key),
so a run at N=16 reuses the 8 samples of a run at N=8. Every candidate comes back as data.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from compound.control.requirements import Level, Requirement, Validation
from compound.core.errors import InputError
from compound.strategies.base import Candidate, Sampler, Strategy, StrategyResult


def normalise(value: Any) -> str:
    """The answer a vote counts: JSON of the value with strings lower-cased and trimmed."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(exclude={"reasoning"})

    def clean(v: Any) -> Any:
        if isinstance(v, str):
            return " ".join(v.lower().split())
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), sort_keys=True, default=str)


class _Parallel(Strategy):
    def __init__(self, n: int) -> None:
        if n < 1:
            raise InputError("n must be at least 1")
        self.n = n

    async def draw(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> list[Candidate]:
        return list(await asyncio.gather(*(self.candidate(sample, i, (), requirements, inputs) for i in range(self.n))))


class SelfConsistency(_Parallel):
    name = "self-consistency"

    def __init__(self, n: int = 5, key: Callable[[Any], str] = normalise) -> None:
        super().__init__(n)
        self.key = key

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        candidates = await self.draw(sample, requirements, inputs)
        votes = Counter(self.key(c.value) for c in candidates if c.error is None)
        if not votes:
            result = self.finish(candidates)
            result.confidence = 0.0
            return result
        answer, count = votes.most_common(1)[0]
        chosen = next(c for c in candidates if c.error is None and self.key(c.value) == answer)
        result = StrategyResult(
            self.name,
            candidates,
            candidates.index(chosen),
            f"{count} of {len(candidates)} samples agree",
            confidence=count / len(candidates),
        )
        return result


class BestOfN(_Parallel):
    """``scorer(value, inputs) -> float``; its scores are recorded as SHOULD validations."""

    name = "best-of-n"

    def __init__(self, n: int, scorer: Callable[[Any, dict[str, Any]], float]) -> None:
        super().__init__(n)
        self.scorer = scorer

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        candidates = await self.draw(sample, requirements, inputs)
        for c in candidates:
            if c.error is None:
                score = float(self.scorer(c.value, inputs))
                c.validations.append(Validation("scorer", Level.SHOULD, True, score, f"score {score:.3f}"))
        scored = [c for c in candidates if c.error is None]
        if not scored:
            return self.finish(candidates)
        best = max(scored, key=lambda c: (c.passed, c.validations[-1].score, -c.index))
        return StrategyResult(
            self.name,
            candidates,
            candidates.index(best),
            f"best score {best.validations[-1].score:.3f}",
            confidence=best.validations[-1].score,
        )


class VerifyAndSelect(_Parallel):
    """Validate every candidate (requirements, LLM judges) and keep the best by MUST, SHOULD and score."""

    name = "verify-and-select"

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        result = self.finish(await self.draw(sample, requirements, inputs))
        vals = result.best.validations
        result.confidence = sum(v.score for v in vals) / len(vals) if vals else float(result.best.error is None)
        return result
