"""``df.compound``: the table operators as a pandas accessor.

import compound.tables.accessor  # registers .compound
df.compound.classify("sentiment", ["positive", "negative"], input_columns=["review"])
tickets.compound.join(teams, "the team handles the ticket", cascade=True)

Each method runs its operator as a job (``job_id=`` makes it resumable) and returns the new table.

The accessor is named ``compound``, a name pandas does not use. (It was ``sem``: that name is
pandas' own ``DataFrame.sem``, the standard error of the mean, which registering it overrode with a
``UserWarning``; ``sem`` is left to pandas.) Each row gets the output of its own input, whatever the index:
a repeated label (``pd.concat``), a MultiIndex, a non-string or NaN label.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from compound.tables import operators
from compound.tables.jobs import process_table
from compound.tables.multirow.aggregate import AggregateOp
from compound.tables.multirow.dedup import DedupOp
from compound.tables.multirow.join import JoinOp
from compound.tables.multirow.top_k import TopKOp


@pd.api.extensions.register_dataframe_accessor("compound")
class SemanticAccessor:
    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def _run(
        self, op_name: str, *args: Any, job_id: str | None = None, progress: bool = False, **kwargs: Any
    ) -> pd.DataFrame:
        make = MULTIROW.get(op_name) or operators.OPERATORS[op_name]
        op = make(self._df, *args, **kwargs)
        return process_table(op, self._df, job_id=job_id, progress=progress).df

    def map(self, column: str, instruction: str, **kw: Any) -> pd.DataFrame:
        return self._run("map", column, instruction, **kw)

    def filter(self, condition: str, **kw: Any) -> pd.DataFrame:
        return self._run("filter", condition, **kw)

    def classify(self, column: str, labels: list[str], **kw: Any) -> pd.DataFrame:
        return self._run("classify", column, labels, **kw)

    def extract(self, source: str, fields: dict[str, Any], **kw: Any) -> pd.DataFrame:
        return self._run("extract", source, fields, **kw)

    def impute(self, column: str, **kw: Any) -> pd.DataFrame:
        return self._run("impute", column, **kw)

    def describe(self, column: str = "description", **kw: Any) -> pd.DataFrame:
        return self._run("describe", column, **kw)

    def join(self, right: pd.DataFrame, condition: str, **kw: Any) -> pd.DataFrame:
        return self._run("join", right, condition, **kw)

    def top_k(self, instruction: str, k: int, **kw: Any) -> pd.DataFrame:
        return self._run("top_k", instruction, k, **kw)

    def aggregate(self, instruction: str, **kw: Any) -> pd.DataFrame:
        return self._run("aggregate", instruction, **kw)

    def dedup(self, columns: list[str], **kw: Any) -> pd.DataFrame:
        return self._run("dedup", columns, **kw)


#: the operators over several rows, by name
MULTIROW: dict[str, Any] = {"join": JoinOp, "top_k": TopKOp, "aggregate": AggregateOp, "dedup": DedupOp}
