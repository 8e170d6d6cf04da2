"""``top_k(df, instruction, k)``: the ``k`` rows that rank highest for an instruction, by a model comparator.

A tournament tree (a knockout over the rows, then a replay of the winner's path for each next place),
never all pairs: with ``n`` rows it plays ``n - 1`` comparisons to find the first row and at most
``ceil(log2 n)`` for each of the next ``k - 1``. Each round of the knockout is one stage (its
comparisons run concurrently); each replay step is one comparison.

A comparison asks the model twice, with the two rows shown as A and B in both orders (both calls in the
same stage), so ``bound = 2 * (n - 1 + (k - 1) * ceil(log2 n))`` calls, known before the first one. A
row wins only when both answers agree on it. Small models often answer "A" (or "B") whatever they are
shown; such a position-biased pair of answers, or a reply that never parsed (listed in the job's
``failed``), is a tie, and a tie goes to the row whose embedding (``tables.multirow.pairs.embed``) is the
more similar to the instruction (then to the row first in the table). So a model biased to one position
never decides the ranking: a fully biased model gives the embedding-similarity ranking.

The output is the ``k`` rows, best first, with a ``rank`` column (1 is best); ``report`` gives the bound,
the comparisons played, the calls and the ties the embedding similarity broke.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from compound.models.typed import model_with
from compound.program.module import Module
from compound.program.predict import Predict, Signature
from compound.program.rows import RowInput, render_row
from compound.tables.io import TableError
from compound.tables.multirow.pairs import embed, pair_text
from compound.tables.multirow.staged import RunStage, StagedOp, failed
from compound.tables.operators import _inputs


class TopKOp(StagedOp):
    name = "top_k"
    output_columns = ["better"]

    def __init__(
        self,
        df: Any,
        instruction: str,
        k: int,
        *,
        input_columns: list[str] | None = None,
        model: Any = None,
        program: Module | None = None,
        column: str = "rank",
    ) -> None:
        super().__init__()
        n = len(df)
        if n == 0:
            raise TableError("top_k: the table has no rows")
        if not isinstance(k, int) or k < 1:
            raise TableError(f"top_k: k must be a whole number of at least 1, got {k!r}")
        if k > n:
            raise TableError(f"top_k: k={k} is larger than the table ({n} rows); ask for at most {n}")
        if not instruction or not instruction.strip():
            raise TableError("top_k needs an instruction saying what ranks higher, e.g. 'the most urgent ticket'")
        if column in df.columns:
            raise TableError(f"top_k: the table already has a column {column!r}; name the rank column with column=")
        self.df, self.k, self.column, self.instruction = df, k, column, instruction
        self.cols = _inputs(df, input_columns)
        out = model_with("Better", {"better": (Literal["A", "B"], ...)})
        text = f"Which row ranks higher for this: {instruction}? Answer A or B."
        self.program = program or Predict(Signature(RowInput, out, text), model=model, max_tokens=16)
        self.rows = n
        depth = math.ceil(math.log2(n)) if n > 1 else 0
        self.bound = 2 * ((n - 1) + (k - 1) * depth)
        self.spec = {"op": "top_k", "instruction": instruction, "k": k, "input_columns": self.cols}

    async def _plan(self, run: RunStage) -> Any:
        texts = [render_row(r, self.cols) for _, r in self.df.iterrows()]
        played = ties = 0
        similarity: list[float] = []

        def tie(a: int, b: int) -> int:
            nonlocal ties
            ties += 1
            if not similarity:  # embedded once, at the first tie (a consistent model never needs it)
                vectors = embed([*texts, self.instruction])
                similarity.extend(float(v @ vectors[-1]) for v in vectors[:-1])
            return max((a, b), key=lambda i: (similarity[i], -i))

        async def play(matches: list[tuple[int, int]]) -> list[int]:
            nonlocal played
            asks = [((a, b, "ab"), pair_text(texts[a], texts[b], ("A", "B"))) for a, b in matches]
            asks += [((a, b, "ba"), pair_text(texts[b], texts[a], ("A", "B"))) for a, b in matches]
            answers = await run(asks)
            played += len(matches)
            winners = []
            for a, b in matches:
                first, second = answers.get((a, b, "ab")), answers.get((a, b, "ba"))
                said = None if failed(first) or failed(second) else (first["better"], second["better"])  # type: ignore[index]
                winners.append(a if said == ("A", "B") else b if said == ("B", "A") else tie(a, b))
            return winners

        size = 1 << (math.ceil(math.log2(len(texts))) if len(texts) > 1 else 0)
        tree: list[int | None] = [None] * (2 * size)
        tree[size : size + len(texts)] = range(len(texts))
        level = size // 2
        while level >= 1:  # the knockout, one round (one stage) per level
            nodes = range(level, 2 * level)
            pairs = {n: (tree[2 * n], tree[2 * n + 1]) for n in nodes}
            matches = [(a, b) for a, b in pairs.values() if a is not None and b is not None]
            won = dict(zip(matches, await play(matches), strict=True))
            for n, (a, b) in pairs.items():
                tree[n] = won[(a, b)] if a is not None and b is not None else (a if b is None else b)
            level //= 2
        ranking: list[int] = []
        while True:
            best = tree[1]
            assert best is not None
            ranking.append(best)
            if len(ranking) == self.k:
                break
            node = size + best
            tree[node] = None
            node //= 2
            while node >= 1:  # replay the winner's path without it
                a, b = tree[2 * node], tree[2 * node + 1]
                tree[node] = (await play([(a, b)]))[0] if a is not None and b is not None else (a if b is None else b)
                node //= 2
        self.report.update(comparisons=played, calls=2 * played, ties=ties)
        out = self.df.iloc[ranking].copy()
        out[self.column] = range(1, len(ranking) + 1)
        return out


def top_k(df: Any, instruction: str, k: int, **kwargs: Any) -> TopKOp:
    """The ``k`` rows of ``df`` that rank highest for ``instruction`` (see the module's docstring)."""
    return TopKOp(df, instruction, k, **kwargs)
