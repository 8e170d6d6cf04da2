"""``BootstrapFewShot`` and ``InstructionSearch``: a teacher writes the demos or the instructions.

BootstrapFewShot (after DSPy's bootstrap family): a teacher program (the student's step on a larger model,
or any program) answers the trainset; answers that pass the metric against the gold outputs become
candidate demos. Then a random search: ``candidates`` demo sets of at most ``max_demos`` (drawn with a
fixed seed, plus the empty set and the labelled examples themselves) are scored on the valset, and the
best is kept. Fixed demos make a fixed prompt prefix, which llama.cpp reuses across calls.

InstructionSearch (reflective, GEPA-style): the current instructions are scored on the valset; the
teacher reads the failures (input, expected, got) and proposes new instructions; a proposal is kept
only if it scores higher. It stops after ``rounds``, after ``patience`` rounds without a gain, or when
the budget runs out (the best so far is kept).
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, Field

from compound.core.errors import OutputParseError
from compound.models.base import Backend
from compound.models.typed import acall_typed
from compound.optimize.base import Example, Metric, Optimizer, aevaluate, clone, input_fields, output_fields, the_step
from compound.program.module import Module
from compound.program.predict import Predict


def _teacher_program(student: Module, teacher: Module | str | Backend | None) -> Module:
    if isinstance(teacher, Module):
        return teacher
    program = clone(student)
    if teacher is not None:
        the_step(program).model = teacher
    return program


class BootstrapFewShot(Optimizer):
    def __init__(
        self,
        teacher: Module | str | Backend | None = None,
        *,
        max_demos: int = 4,
        candidates: int = 6,
        max_bootstrap_rows: int = 32,
        seed: int = 0,
    ) -> None:
        self.teacher = teacher
        self.max_demos = max_demos
        self.candidates = candidates
        self.max_bootstrap_rows = max_bootstrap_rows
        self.seed = seed

    async def _compile(self, student: Module, trainset: list[Example], valset: list[Example], metric: Metric) -> None:
        step = the_step(student)
        names = input_fields(step) + output_fields(step)
        rng = random.Random(self.seed)
        rows = rng.sample(trainset, min(len(trainset), self.max_bootstrap_rows))
        teacher = _teacher_program(student, self.teacher)
        answers = await aevaluate(teacher, rows, metric)
        boot = []
        for ex, pred, score in zip(rows, answers.predictions, answers.scores, strict=True):
            if pred is not None and score >= 1.0:
                got = pred if isinstance(pred, dict) else pred.model_dump()
                boot.append({**{k: ex[k] for k in input_fields(step)}, **{k: got[k] for k in output_fields(step)}})
        self.report["bootstrapped"] = len(boot)
        labelled = [{k: ex[k] for k in names if k in ex} for ex in trainset]
        pools = [[], labelled[: self.max_demos]]
        source = boot or labelled
        for _ in range(self.candidates):
            pools.append(rng.sample(source, min(self.max_demos, len(source))))
        val = valset or [ex for ex in trainset if ex not in rows] or trainset
        best_score, tried = -1.0, []
        for demos in pools:
            candidate = clone(student)
            the_step(candidate).demos = list(demos)
            score = (await aevaluate(candidate, val, metric)).score
            tried.append({"demos": len(demos), "score": score})
            if score > best_score:  # set on the student at once, so a budget stop keeps the best so far
                best_score, step.demos = score, list(demos)
            self.report.update(tried=tried, best_score=best_score)


class Proposal(BaseModel):
    instructions: str = Field(description="the complete new instructions for the task")


PROPOSE = (
    "You improve the instructions of a language-model task. The current instructions are:\n{current}\n\n"
    "On these examples the model answered wrongly:\n{failures}\n\n"
    "Work out what the instructions miss, then write improved instructions: short, general (no copying "
    "of the examples), saying how to decide. Keep the output format unchanged."
)


class InstructionSearch(Optimizer):
    def __init__(
        self,
        teacher: str | Backend | None = None,
        *,
        rounds: int = 4,
        patience: int = 2,
        failures_shown: int = 5,
        seed: int = 0,
    ) -> None:
        self.teacher = teacher
        self.rounds = rounds
        self.patience = patience
        self.failures_shown = failures_shown
        self.seed = seed

    async def _compile(self, student: Module, trainset: list[Example], valset: list[Example], metric: Metric) -> None:
        step = the_step(student)
        val = valset or trainset
        rng = random.Random(self.seed)
        current = await aevaluate(student, val, metric)
        history = [{"instructions": step.instructions, "score": current.score}]
        self.report["history"] = history
        flat = 0
        for _ in range(self.rounds):
            if current.score >= 1.0 or flat >= self.patience:
                break
            proposal = await self._propose(step, val, current, rng)
            if proposal is None:
                flat += 1
                continue
            candidate = clone(student)
            the_step(candidate).instructions = proposal
            scored = await aevaluate(candidate, val, metric)
            history.append({"instructions": proposal, "score": scored.score})
            if scored.score > current.score:
                step.instructions, current, flat = proposal, scored, 0
            else:
                flat += 1

    async def _propose(self, step: Predict, val: list[Example], current: Any, rng: random.Random) -> str | None:
        wrong = [(ex, p) for ex, p, s in zip(val, current.predictions, current.scores, strict=True) if s < 1.0]
        shown = rng.sample(wrong, min(self.failures_shown, len(wrong)))
        lines = []
        for ex, pred in shown:
            got = "no valid answer" if pred is None else (pred if isinstance(pred, dict) else pred.model_dump())
            inputs = {k: str(ex[k])[:300] for k in input_fields(step)}
            expected = {k: ex[k] for k in output_fields(step) if k in ex}
            lines.append(f"- input: {inputs}\n  expected: {expected}\n  got: {got}")
        prompt = PROPOSE.format(current=step.instructions or "(none)", failures="\n".join(lines))
        try:
            typed = await acall_typed(Proposal, prompt, model=self.teacher or step.model, max_tokens=200)
        except OutputParseError:
            return None
        text = typed.value.instructions.strip()
        return text if text and text != step.instructions else None
