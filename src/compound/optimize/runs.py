"""Whole-program runs recorded step by step: what every optimizer of several steps learns from.

``traced_runs(program, rows, metric)`` runs a program (a teacher's copy) on each row and records, for
every typed step it called, the inputs that step saw and the output it gave (its last call in the run),
with the run's score under ``metric``. ``set_demos`` gives each step of a program its record in each of
a set of chosen runs: the demos of a program of several steps always come from whole runs together.

Guarantees:
- the program recorded is a copy (``teacher_program``): its steps' ``forward``/``aforward`` are wrapped on
  that copy only, so the program the user passed is never changed;
- concurrent rows never mix their records (each row's record lives in its own task's context);
- a run whose reply never parsed scores 0 and keeps what its steps recorded before it stopped (so a
  caller that does not read the score, ``Distill``, still gets the earlier steps' lessons);
- without a ``metric`` every run scores 1.0 (a teacher's answers taken as they are).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from compound.core.concurrency import gather
from compound.core.errors import OutputParseError
from compound.models.base import Backend
from compound.optimize.base import Example, Metric, clone, input_fields, program_inputs, steps
from compound.program.module import Module
from compound.program.predict import Predict

#: one run's record: step path -> that step's inputs and output, as a demo
Run = dict[str, dict[str, Any]]


def teacher_program(student: Module, teacher: Module | str | Backend | None) -> Module:
    """A copy of the ``teacher`` program, or of the student with every step on the ``teacher`` model (the
    student itself when ``teacher`` is None)."""
    program = clone(teacher if isinstance(teacher, Module) else student)
    if teacher is not None and not isinstance(teacher, Module):
        for _, step in steps(program):
            step.model = teacher
    return program


def bootstrap_sizes(trainset: Sequence[Example], valset: Sequence[Example] | None, max_rows: int) -> tuple[int, int]:
    """How many rows the teacher runs on and how many the candidates are scored on (``bootstrap_split``)."""
    rows = min(len(trainset), max_rows)
    return rows, len(valset) if valset else max(len(trainset) - rows, 0) or len(trainset)


def bootstrap_split(
    trainset: list[Example], valset: list[Example], max_rows: int, rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """The rows the teacher runs on (drawn), and the rows candidates are scored on: the valset, else the
    training rows the teacher did not run on, else (every row drawn) the trainset itself."""
    rows = rng.sample(trainset, min(len(trainset), max_rows))
    return rows, valset or [ex for ex in trainset if ex not in rows] or trainset


def set_demos(program: Module, runs: Sequence[Run]) -> None:
    """Each step's demos: its record in each chosen run (a step not called in a run gets none from it)."""
    for path, step in steps(program):
        step.demos = [run[path] for run in runs if path in run]


async def traced_runs(program: Module, rows: Sequence[Example], metric: Metric | None) -> list[tuple[Run, float]]:
    """Run ``program`` on every row (concurrently), recording each step's inputs and output: (the run's
    record, its score) per row. ``program`` must be a copy made for this (``teacher_program``)."""
    record: ContextVar[Run | None] = ContextVar("run_record", default=None)
    for path, step in steps(program):
        _record_calls(step, path, record)
    names = program_inputs(program)

    async def one(ex: Example) -> tuple[Run, float]:
        demos: Run = {}
        record.set(demos)  # this task's own context: concurrent rows never mix their records
        try:
            prediction = await program.acall(**{k: ex[k] for k in names})
        except OutputParseError:
            return demos, 0.0
        return demos, 1.0 if metric is None else metric(ex, prediction)

    return await gather(one(ex) for ex in rows)


def _record_calls(step: Predict, path: str, record: ContextVar[Run | None]) -> None:
    """Wrap this step instance's ``forward`` and ``aforward`` (a teacher's copy only) to record its calls."""
    fields = input_fields(step)

    def keep(inputs: dict[str, Any], value: Any) -> None:
        demos = record.get()
        if demos is not None and value is not None:
            got = value if isinstance(value, dict) else value.model_dump()
            demos[path] = {**{k: inputs[k] for k in fields if k in inputs}, **got}

    forward, aforward = step.forward, step.aforward

    def recorded_forward(**inputs: Any) -> Any:
        value = forward(**inputs)
        keep(inputs, value)
        return value

    async def recorded_aforward(**inputs: Any) -> Any:
        value = await aforward(**inputs)
        keep(inputs, value)
        return value

    step.forward, step.aforward = recorded_forward, recorded_aforward  # type: ignore[method-assign]
