"""Pairwise preference: a model judges which of two outputs better meets a criterion.

``prefer(criterion, inputs, first, second, model=...)`` asks the judge twice, once with each output shown
as "A", so a judge that favours a position cancels out:

- each order gives a reason first, then a verdict (``A``, ``B`` or ``tie``), as ``LLMJudge`` does;
- ``score`` is the share of the two verdicts won by ``first`` (a tie counts a half): 1.0 means both
  orders preferred ``first``, 0.5 means no preference (a tie, or each order picked its own position);
- ``consistent`` says whether the two orders named the same output (or both a tie).

Calls go through the model's response cache, so judging the same pair again costs nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field

INSTRUCTIONS = "You are a strict, fair reviewer. Judge the content, not the position or the length."


class PairVerdict(BaseModel):
    reason: str = Field(max_length=600)
    better: Literal["A", "B", "tie"]


def _shown(value: Any) -> str:
    return value.model_dump_json() if isinstance(value, BaseModel) else str(value)


async def _one(criterion: str, inputs: dict[str, Any], a: Any, b: Any, model: Any) -> str:
    from compound.models.typed import acall_typed

    prompt = (
        f"Criterion: {criterion}\n\nInputs: {inputs}\n\nOutput A: {_shown(a)}\n\nOutput B: {_shown(b)}\n\n"
        "Which output meets the criterion better: A, B, or tie?"
    )
    verdict = await acall_typed(PairVerdict, prompt, model=model, instructions=INSTRUCTIONS, max_tokens=250)
    return verdict.value.better


async def prefer(criterion: str, inputs: dict[str, Any], first: Any, second: Any, *, model: Any) -> dict[str, Any]:
    """``{"score", "consistent", "verdicts"}`` for ``first`` against ``second`` (see the module docstring);
    ``verdicts`` are the winners named in each order (``first``, ``second`` or ``tie``)."""
    as_a, as_b = await asyncio.gather(
        _one(criterion, inputs, first, second, model), _one(criterion, inputs, second, first, model)
    )
    named = [
        {"A": "first", "B": "second"}.get(as_a, "tie"),
        {"A": "second", "B": "first"}.get(as_b, "tie"),
    ]
    score = sum(1.0 if v == "first" else 0.5 if v == "tie" else 0.0 for v in named) / 2
    return {"score": score, "consistent": named[0] == named[1], "verdicts": named}
