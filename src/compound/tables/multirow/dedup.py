"""``dedup(df, columns)``: rows that are semantic duplicates of each other, blocked by embeddings, confirmed
by a model.

Plan: embed each row's ``columns`` and block (``tables.pairs``): a pair of rows is a candidate only if one is
among the other's ``block_k`` nearest (so at most ``n * block_k`` calls, the ``bound``); the model judges
each candidate; confirmed pairs are merged transitively (union-find) into groups. A candidate whose reply
never parsed is not merged, and the job lists it under ``failed``. Pairs blocking dropped are never judged.

The output is the table with a ``duplicate_of`` column: the index label of the first row of the row's group
(empty for that first row and for rows with no duplicate); ``drop=True`` returns only the first row of each
group. ``report`` gives the candidates, the confirmed pairs and the groups.
"""

from __future__ import annotations

from typing import Any

from compound.program.module import Module
from compound.program.rows import render_row
from compound.tables.io import TableError, require_columns
from compound.tables.multirow.pairs import block, embed, judge, matched, pair_text
from compound.tables.multirow.staged import RunStage, StagedOp


class DedupOp(StagedOp):
    name = "dedup"
    output_columns = ["match"]

    def __init__(
        self,
        df: Any,
        columns: list[str],
        *,
        instruction: str | None = None,
        model: Any = None,
        program: Module | None = None,
        block_k: int = 3,
        column: str = "duplicate_of",
        drop: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(columns, str):
            columns = [columns]
        if not columns:
            raise TableError("dedup needs the columns that make two rows duplicates, e.g. ['name', 'address']")
        require_columns(df, columns)
        if block_k < 1:
            raise TableError(f"dedup: block_k must be at least 1, got {block_k}")
        if column in df.columns:
            raise TableError(f"dedup: the table already has a column {column!r}; name the new one with column=")
        self.df, self.columns, self.block_k, self.column, self.drop = df, list(columns), block_k, column, drop
        text = instruction or "Are these two rows duplicates: do they describe the same thing?"
        self.program = judge(text, model, program)
        self.rows = len(df)
        self.bound = min(len(df) * (len(df) - 1) // 2, len(df) * block_k)
        self.spec = {"op": "dedup", "columns": self.columns, "instruction": text, "block_k": block_k}

    async def _plan(self, run: RunStage) -> Any:
        import pandas as pd

        texts = [render_row(r, self.columns) for _, r in self.df.iterrows()]
        candidates = block(embed(texts), embed(texts), self.block_k, same=True) if len(texts) > 1 else []
        answers = await run([((i, j), pair_text(texts[i], texts[j], ("first", "second"))) for i, j, _ in candidates])
        parent = list(range(len(texts)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        confirmed = 0
        for i, j, _ in candidates:
            out = answers.get((i, j))
            if matched(out):
                confirmed += 1
                a, b = root(i), root(j)
                parent[max(a, b)] = min(a, b)  # the group's root is its first row
        roots = [root(i) for i in range(len(texts))]
        self.report.update(
            candidates=len(candidates),
            confirmed=confirmed,
            groups=len(set(roots)),
            duplicates=sum(1 for i, r in enumerate(roots) if r != i),
        )
        out = self.df.copy()
        labels = [self.df.index[r] if r != i else None for i, r in enumerate(roots)]
        out[self.column] = pd.Series(labels, index=out.index, dtype=object)  # labels stay labels, None stays None
        if self.drop:
            out = out[[r == i for i, r in enumerate(roots)]].drop(columns=[self.column])
        return out


def dedup(df: Any, columns: list[str], **kwargs: Any) -> DedupOp:
    """The semantic duplicates among ``df``'s rows, judged on ``columns`` (see the module's docstring)."""
    return DedupOp(df, columns, **kwargs)
