"""The optimizer contract, shared by every optimizer in ``compound.optimize``.

``optimizer.compile(program, trainset, valset=None, *, metric=None)`` returns a *new* program (the one
passed in is never changed) whose learned parameters (instructions, demos, examples) are ordinary
program parameters, so ``Module.save``/``load`` keep them in the versioned JSON.

Guarantees:
- every model call an optimizer makes (the program's, a teacher's, a proposer's) happens inside
  ``compile``, under the caller's active ``compound.budget`` and traced under one run named
  ``optimize <Optimizer>``; a budget that runs out stops the search and the best program found so far
  is returned (a budget's reservations mean no call ever goes past its cap);
- examples are plain dicts holding the program's inputs and the expected outputs; a program of one step
  takes its step's input fields, any other program the parameters of its own ``forward``/``aforward``;
- a program of several steps needs a ``metric`` (there is no one output to compare by default); which
  optimizers accept one is said by each: ``BootstrapFewShot`` (demos per step, from whole-program runs
  that pass the metric) and ``JointSearch`` (instructions and demos per step, searched together) do;
  ``KNNFewShot`` and ``InstructionSearch`` tune one step and say so.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from compound.core.concurrency import gather, run_sync
from compound.core.errors import BudgetExceededError, ConfigurationError, OutputParseError
from compound.models.base import Backend
from compound.program.module import Module
from compound.program.predict import Predict
from compound.store.traces import start_run

Example = dict[str, Any]
Metric = Callable[[Example, Any], float]


def output_fields(step: Predict) -> list[str]:
    return list(step.output_type.model_fields)


def input_fields(step: Predict) -> list[str]:
    return list(step.signature.inputs.model_fields)


def _norm(value: Any) -> str:
    return str(value).strip().lower()


def exact_match(fields: Sequence[str]) -> Metric:
    """1.0 when every expected output field equals the prediction's (case and outer spaces ignored)."""

    def metric(example: Example, prediction: Any) -> float:
        if prediction is None:
            return 0.0
        got = prediction if isinstance(prediction, dict) else prediction.model_dump()
        return float(all(_norm(got.get(f)) == _norm(example[f]) for f in fields if f in example))

    return metric


def steps(program: Module) -> list[tuple[str, Predict]]:
    """Every typed step of ``program`` with its dotted path (``""`` for a program that is a ``Predict``)."""
    return [(path, m) for path, m in program.named_modules() if isinstance(m, Predict)]


def program_inputs(program: Module) -> list[str]:
    """The names a program is called with: a step's input fields, or its own ``forward``'s parameters."""
    if isinstance(program, Predict):
        return input_fields(program)
    for name in ("aforward", "forward"):
        method = getattr(type(program), name)
        if method is not getattr(Module, name):
            params = inspect.signature(method).parameters.values()
            named = [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            if named:
                return named
    found = steps(program)
    if len(found) == 1:
        return input_fields(found[0][1])
    raise ConfigurationError(
        f"cannot tell what {type(program).__name__} is called with: give its forward named parameters"
    )


def the_step(program: Module) -> Predict:
    """The one typed step an optimizer tunes (a ``Predict``, or a program holding exactly one)."""
    steps = [m for _, m in program.named_modules() if isinstance(m, Predict)]
    if len(steps) != 1:
        raise ConfigurationError(
            f"this optimizer tunes a program with exactly one Predict step; {type(program).__name__} has "
            f"{len(steps)}: for a program of several steps use BootstrapFewShot or JointSearch (demos and "
            "instructions per step, from whole-program runs) or Distill(method='knn') (per-step nearest lessons)"
        )
    return steps[0]


def clone(program: Module) -> Module:
    """A deep copy that shares the model backends (they hold loaded weights) instead of copying them."""
    memo: dict[int, Any] = {}
    for _, module in program.named_modules():
        for value in vars(module).values():
            if isinstance(value, Backend):
                memo[id(value)] = value
    return copy.deepcopy(program, memo)


@dataclass
class Scored:
    score: float
    predictions: list[Any]
    scores: list[float]


async def aevaluate(program: Module, examples: Sequence[Example], metric: Metric) -> Scored:
    """Run ``program`` on every example (concurrently) and score it; a reply that never parses scores 0."""
    names = program_inputs(program)

    async def one(ex: Example) -> Any:
        try:
            return await program.acall(**{k: ex[k] for k in names})
        except OutputParseError:
            return None

    predictions = await gather(one(ex) for ex in examples)
    scores = [metric(ex, p) for ex, p in zip(examples, predictions, strict=True)]
    return Scored(sum(scores) / max(1, len(scores)), predictions, scores)


class Optimizer:
    """Base class: subclasses write ``_compile`` (async) on a clone of the program."""

    def compile(self, program: Module, *args: Any, **kwargs: Any) -> Module:
        """``acompile`` run to its end without an event loop; the same arguments."""
        return run_sync(self.acompile(program, *args, **kwargs))

    async def acompile(
        self,
        program: Module,
        trainset: Sequence[Example],
        valset: Sequence[Example] | None = None,
        *,
        metric: Metric | None = None,
    ) -> Module:
        if not trainset:
            raise ConfigurationError(f"{type(self).__name__}.compile needs a non-empty trainset")
        student = clone(program)
        if metric is None:
            if len(steps(student)) != 1:
                raise ConfigurationError(
                    f"{type(self).__name__}.compile on a program of several steps needs metric=: a function "
                    "(example, prediction) -> score in [0, 1] on the program's final output"
                )
            metric = exact_match(output_fields(the_step(student)))
        with start_run(f"optimize {type(self).__name__}", train=len(trainset), val=len(valset or ())) as r:
            self.report: dict[str, Any] = {"run_id": r.id}
            try:
                await self._compile(student, list(trainset), list(valset or []), metric)
            except BudgetExceededError as e:  # keep the best found before the budget ran out
                self.report["stopped"] = f"budget: {e}"
            self.report["usage"] = r.usage.total.to_dict()
        return student

    async def _compile(self, student: Module, trainset: list[Example], valset: list[Example], metric: Metric) -> None:
        raise NotImplementedError
