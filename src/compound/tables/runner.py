"""Where a table job's rows are computed, and how one row is.

``compute_row`` is the one definition of a row: the program's answer as the output columns' JSON, or,
when the reply never parsed or the row is too long for the model, empty cells with the reason under
``ERROR_KEY`` (the job goes on); any other error stops the job. A ``Runner`` computes rows so and hands
them back as ``FinishedRow`` items; ``compound.tables.jobs`` does the rest (job store, cache, progress,
usage, stops) the same for every runner.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compound.core.errors import ContextLengthError, OutputParseError
from compound.core.settings import get_settings
from compound.core.usage import track_usage
from compound.tables.operators import ERROR_KEY, TableOp


def _value_dict(value: Any, columns: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return {c: value.get(c) for c in columns}
    return {c: getattr(value, c, None) for c in columns}


class Runner:
    """Where a job's rows are computed. ``process_table`` does everything around it, the same for every
    runner: the job store, checkpoints and ``--resume``, the row cache, progress, usage and the stop on a
    failure. A runner computes the row inputs it is given with ``compute_row`` (or as that would) and
    hands each finished one to ``done`` (``FinishedRow`` items, alone or in batches); after the first
    failure that stops a job (recorded in ``failures``) it starts no new row, lets those in flight
    finish and hands them in. ``LocalRunner`` runs them on this process's event loop;
    ``compound.tables.ray_runner.RayRunner`` on a Ray cluster."""

    def reach(self) -> None:
        """Before anything is computed (an ``--auto`` op's teaching included): check that the place the
        rows will be computed is there (a cluster reached)."""

    def prepare(self, op: TableOp) -> None:
        """Before the job opens: check that rows can be computed at all (e.g. a cluster and its workers)."""

    def close(self) -> None:
        """After the job, however it ended: let go of what ``prepare`` started."""

    async def compute(
        self,
        op: TableOp,
        texts: dict[str, str],
        done: Callable[[list[FinishedRow]], None],
        failures: list[BaseException],
    ) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class FinishedRow:
    key: str  # the row input's identity (``_input_key``)
    output: str  # its output as JSON (with ``ERROR_KEY`` when its reply never parsed)
    usage: str  # its usage as JSON: what the row cost with no cache at all
    failed: bool  # its reply never parsed (not cached: a later run may try again)


#: ``json.dumps(value, default=str)`` without building an encoder per row
_encode_output = json.JSONEncoder(default=str).encode


async def compute_row(program: Any, text: str, columns: list[str]) -> tuple[str, bool]:
    """One row input's output JSON, and whether its reply never parsed. A reply that never parses or a
    row too long for the model leaves the row's cells empty with the reason; any other error is raised
    (it stops the job). Its usage is counted by the trackers open around the call."""
    failed = None
    try:
        value = await program.acall(row=text)
    except OutputParseError as e:  # this reply never parsed: the cells stay empty, the job goes on
        value, failed = {}, {ERROR_KEY: f"{e.errors} (raw reply: {e.raw_text[:200]!r})"}
    except ContextLengthError as e:  # this row is too long for the model: the same, for this row
        value, failed = {}, {ERROR_KEY: str(e)}
    return _encode_output({**_value_dict(value, columns), **(failed or {})}), failed is not None


class LocalRunner(Runner):
    """Rows computed here, on the event loop, at most ``concurrency`` at once (default: the settings'
    ``max_concurrency``)."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.concurrency = concurrency

    async def compute(self, op, texts, done, failures) -> None:
        sem = asyncio.Semaphore(self.concurrency or get_settings().max_concurrency)

        async def one(key: str) -> None:
            async with sem:
                if failures:
                    return
                try:
                    with track_usage() as row_usage:
                        out_json, failed = await compute_row(op.program, texts[key], op.output_columns)
                except Exception as e:
                    failures.append(e)
                    return
            done([FinishedRow(key, out_json, json.dumps(row_usage.total.to_dict()), failed)])

        tasks = [asyncio.ensure_future(one(k)) for k in texts]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # interrupted or cancelled: stop at once; what was committed stays committed
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
