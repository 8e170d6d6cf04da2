"""Operators over several rows (join, top-k, aggregate, dedup) as plans of stages run by the job machinery.

A one-row operator is one ``TableOp``: one pass of one program over the rows. An operator over several rows
cannot be one pass: a join blocks pairs by embeddings before a model sees some of them, a top-k plays a
tournament round by round, an aggregate folds parts of a group before it answers for the whole. Such an
operator is a ``StagedOp``: its ``_plan`` decides each stage's inputs from what the earlier stages answered
and hands them, as ``(key, text)`` pairs, to ``run``, which ``tables.jobs`` provides.

Guarantees (``tables.jobs`` runs every stage exactly as it runs a one-row operator):

- Every stage of an operator runs its one program (``StagedOp.program``), so all stages share one
  fingerprint and one job: results are committed as they come, keyed by content; identical inputs share
  one call; the row cache, budgets, usage and concurrency are the job's.
- A plan is deterministic given the answers it gets (fixed seeds, sorted candidates), so a resumed job
  replays it and every stage it reaches again is served from the checkpoint, without a call.
- ``bound`` is the most model calls the plan can make, known before any call: a caller can refuse a job
  that could cost more than it allows, and the progress bar counts against it.
- ``report`` (after the run) says what the plan did: how many inputs reached the model, thresholds,
  rows folded; nothing is dropped without being counted there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, final

from compound.program.module import Module
from compound.tables.operators import ERROR_KEY, TableOp

#: what a plan calls to run a stage: (key, text) inputs -> key -> the program's output (a dict)
RunStage = Callable[[list[tuple[Any, str]]], Awaitable[dict[Any, dict[str, Any]]]]


def _outputs(_df: Any, outputs: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return outputs


class StagedOp(ABC):
    """An operator over several rows. Subclasses set ``name``, ``program``, ``output_columns``, ``spec``,
    ``rows`` (input rows) and ``bound`` in ``__init__`` (checking their input there, before any call) and
    implement ``_plan``, which returns the operator's output table."""

    name: str
    program: Module
    output_columns: list[str]
    spec: dict[str, Any]
    rows: int
    bound: int
    #: what building the op learned and spent once (one-row operators' ``--auto``); none here
    setup: dict[str, Any]
    #: the output columns whose values a model wrote as text (a file output neutralises formulas in them)
    written_columns: list[str] = []

    def __init__(self) -> None:
        self.setup = {}
        self.report: dict[str, Any] = {}

    @final
    def stage(self, tasks: list[tuple[Any, str]]) -> TableOp:
        """The ``TableOp`` of one stage: this operator's program over ``tasks``."""
        return TableOp(self.name, self.program, self.output_columns, tasks, _outputs, self.spec)

    @property
    def fingerprint(self) -> str:
        return self.stage([]).fingerprint

    @final
    async def plan(self, run: RunStage) -> Any:
        """Run the plan (each stage through ``run``) and return the output table; ``report`` says what it did."""
        self.report = {"bound": self.bound}
        return await self._plan(run)

    @abstractmethod
    async def _plan(self, run: RunStage) -> Any: ...


def failed(output: dict[str, Any] | None) -> bool:
    """Whether a stage's output is missing or a reply that never parsed (the job recorded why)."""
    return output is None or ERROR_KEY in output
