"""Rejection sampling: draw independent samples until one meets every MUST requirement (or all N at
once, in parallel, keeping the best)."""

from __future__ import annotations

import asyncio
from typing import Any

from compound.control.requirements import Requirement
from compound.core.errors import InputError
from compound.strategies.base import Candidate, Sampler, Strategy, StrategyResult


class RejectionSampling(Strategy):
    name = "rejection"

    def __init__(self, n: int = 4, parallel: bool = False) -> None:
        if n < 1:
            raise InputError("n must be at least 1")
        self.n = n
        self.parallel = parallel

    async def arun(self, sample: Sampler, requirements: list[Requirement], inputs: dict[str, Any]) -> StrategyResult:
        if self.parallel:
            candidates = list(
                await asyncio.gather(*(self.candidate(sample, i, (), requirements, inputs) for i in range(self.n)))
            )
            return self.finish(candidates)
        candidates: list[Candidate] = []
        for i in range(self.n):
            cand = await self.candidate(sample, i, (), requirements, inputs)
            candidates.append(cand)
            if cand.passed:
                break
        return self.finish(candidates)
