"""Repair: try, validate, and on failure show the model its reply and the failed requirements' reasons."""

from __future__ import annotations

from typing import Any

from compound.control.requirements import Requirement
from compound.core.errors import InputError
from compound.core.types import Message
from compound.strategies.base import Candidate, Sampler, Strategy, StrategyResult

REPAIR_PROMPT = "Your answer does not meet these requirements:\n{reasons}\nGive a corrected answer."


def feedback_for(candidate: Candidate) -> tuple[Message, ...]:
    reasons = [f"- {v.reason}" for v in candidate.failures()] or [f"- {candidate.error}"]
    return (Message("assistant", candidate.text), Message("user", REPAIR_PROMPT.format(reasons="\n".join(reasons))))


class Repair(Strategy):
    name = "repair"

    def __init__(self, attempts: int = 3) -> None:
        if attempts < 1:
            raise InputError("attempts must be at least 1")
        self.attempts = attempts

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        candidates: list[Candidate] = []
        feedback: tuple[Message, ...] = ()
        for i in range(self.attempts):
            cand = await self.candidate(sample, i, feedback, requirements, inputs)
            candidates.append(cand)
            if cand.passed:
                break
            feedback = feedback_for(cand)
        return self.finish(candidates)
