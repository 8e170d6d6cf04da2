"""Pairs of rows for ``join`` and ``dedup``: embedding blocking and the model that judges a pair.

Blocking keeps, for every row, its ``block_k`` most similar rows of the other side (by the cosine of
sentence embeddings, ``optimize.students.embedding.embed_texts``; for a dedup, of the same table), both ways, so a pair
reaches a model only if one of its rows is among the other's nearest: at most ``(n + m) * block_k`` pairs
instead of ``n * m``. What blocking drops is never judged: the benchmark measures that loss against gold
pairs. The candidates are sorted, so a plan over them is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from compound.core.errors import InputError
from compound.models.typed import model_with
from compound.program.module import Module
from compound.program.predict import Predict, Signature
from compound.program.rows import RowInput
from compound.tables.multirow.staged import failed

#: rows whose similarities are computed at once (a block of ``_CHUNK x m`` floats)
_CHUNK = 1024


def embed(texts: Sequence[str]) -> Any:
    """Unit-length embeddings of ``texts`` (looked up on the module at call time, so tests swap it)."""
    from compound.optimize.students import embedding

    return embedding.embed_texts(list(texts))


def block(left: Any, right: Any, k: int, *, same: bool = False) -> list[tuple[int, int, float]]:
    """Candidate pairs ``(i, j, cosine)``: each row's ``k`` nearest on the other side, both ways; with
    ``same`` (one table against itself) the pairs ``i < j`` only. Sorted by ``(i, j)``."""
    import numpy as np

    if k < 1:
        raise InputError(f"block_k must be at least 1, got {k}")
    pairs: dict[tuple[int, int], float] = {}

    def nearest(a: Any, b: Any, flip: bool) -> None:
        kk = min(k + (1 if same else 0), b.shape[0])
        for start in range(0, a.shape[0], _CHUNK):
            sims = a[start : start + _CHUNK] @ b.T
            top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            for r, cols in enumerate(top):
                i = start + r
                # a row's own copy is not its neighbour; k others at most (ties may leave it out of the top)
                others = sorted((int(j) for j in cols if not (same and i == int(j))), key=lambda j: -sims[r, j])
                for j in others[:k]:
                    key = (j, i) if flip else (i, j)
                    if same:
                        key = (min(key), max(key))
                    pairs[key] = float(sims[r, j])

    nearest(left, right, False)
    if not same:
        nearest(right, left, True)
    return [(i, j, s) for (i, j), s in sorted(pairs.items())]


def judge(instruction: str, model: Any, program: Module | None) -> Module:
    """The step that says whether a pair matches: ``{"match": "yes" | "no"}`` for the pair shown as one input.

    Yes/no rather than a JSON boolean: on Spider question/schema pairs qwen2.5-coder-1.5b answered ``false``
    to 4 of 4 pairs as a boolean and 3 of 4 right as yes/no. A ``program`` may answer either."""
    if program is not None:
        return program
    out = model_with("Match", {"match": (Literal["yes", "no"], ...)})
    return Predict(Signature(RowInput, out, f"{instruction} Answer yes or no."), model=model, max_tokens=16)


def matched(output: dict[str, Any] | None) -> bool:
    """A judged pair: ``yes`` (or ``true``); a reply that never parsed is no match (the job lists it)."""
    return not failed(output) and output.get("match") in (True, "yes")  # type: ignore[union-attr]


def pair_text(first: str, second: str, names: tuple[str, str]) -> str:
    return f"{names[0]}:\n{first}\n\n{names[1]}:\n{second}"
