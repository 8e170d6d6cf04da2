"""``join(left, right, condition)``: the pairs of rows, one from each table, for which a condition holds.

Plan: embed both tables' rows and block (``tables.pairs``): only each row's ``block_k`` nearest rows of the
other table become candidate pairs. Without a cascade, the model judges every candidate. With
``cascade=True`` (as LOTUS's and BARGAIN's joins), the embedding similarity answers the pairs it is
certified for and the model only the uncertain ones:

1. the model judges a uniform sample of ``sample`` candidates (seeded: the same sample on a resume);
2. on that sample, two thresholds on the similarity are learned with ``routing.calibrate``'s
   finite-sample tests, each at ``delta / 2``: pairs at or above ``accept`` are matches (their precision
   against the model is at least ``precision`` on fresh candidates) and pairs below ``reject`` are not
   (the share of the model's matches lost is at most ``1 - recall``); too few points for a guarantee
   certifies nothing (``accept`` is ``inf``, ``reject`` ``-inf``) and the model judges every pair;
3. the model judges the candidates between the thresholds.

With probability at least ``1 - delta``, the output's precision and recall with respect to what the model
would say over all candidates are at least ``precision`` and ``recall``. Pairs that blocking dropped are
outside the guarantee. ``report`` gives the pairs, candidates, sample, each threshold with its certificate,
and how many pairs reached the model (``reached_model``, ``share_reached_model`` of the candidates).

The output table has the left columns, the right columns (a name both have gets ``_left``/``_right``),
``left_row`` and ``right_row`` (the rows' index labels), ``similarity`` and ``judged_by`` (``model`` or
``similarity``).
"""

from __future__ import annotations

import random
from typing import Any

from compound.program.module import Module
from compound.program.rows import render_row
from compound.routing.calibrate import learn_threshold, recall_threshold
from compound.tables.io import TableError
from compound.tables.multirow.pairs import block, embed, judge, matched, pair_text
from compound.tables.multirow.staged import RunStage, StagedOp, failed


class JoinOp(StagedOp):
    name = "join"
    output_columns = ["match"]

    def __init__(
        self,
        left: Any,
        right: Any,
        condition: str,
        *,
        left_columns: list[str] | None = None,
        right_columns: list[str] | None = None,
        model: Any = None,
        program: Module | None = None,
        block_k: int = 5,
        cascade: bool = False,
        recall: float = 0.9,
        precision: float = 0.9,
        delta: float = 0.1,
        sample: int = 200,
    ) -> None:
        super().__init__()
        if len(left) == 0 or len(right) == 0:
            side = "left" if len(left) == 0 else "right"
            raise TableError(f"join: the {side} table has no rows; give two tables with at least one row each")
        if not condition or not condition.strip():
            raise TableError("join needs a condition, e.g. 'the paper cites the other'")
        if block_k < 1:
            raise TableError(f"join: block_k must be at least 1, got {block_k}")
        for name, value in (("recall", recall), ("precision", precision), ("delta", delta)):
            if not 0 < value < 1:
                raise TableError(f"join: {name} must be between 0 and 1 (exclusive), got {value}")
        if cascade and sample < 1:
            raise TableError(f"join: the cascade's sample must have at least 1 pair, got {sample}")
        self.left, self.right = left, right
        self.left_columns = _columns(left, left_columns, "left")
        self.right_columns = _columns(right, right_columns, "right")
        self.cascade, self.recall, self.precision, self.delta, self.sample = cascade, recall, precision, delta, sample
        self.block_k = block_k
        self.program = judge(
            f"Does this condition hold for the pair (the left row and the right row)? {condition}.", model, program
        )
        self.rows = len(left) + len(right)
        # every candidate at most once: each left row's k nearest plus each right row's k nearest
        self.bound = min(len(left) * len(right), (len(left) + len(right)) * block_k)
        self.spec = {
            "op": "join",
            "condition": condition,
            "left_columns": self.left_columns,
            "right_columns": self.right_columns,
            "block_k": block_k,
            "cascade": cascade,
            **({"recall": recall, "precision": precision, "delta": delta, "sample": sample} if cascade else {}),
        }

    async def _plan(self, run: RunStage) -> Any:
        left_text = [render_row(r, self.left_columns) for _, r in self.left.iterrows()]
        right_text = [render_row(r, self.right_columns) for _, r in self.right.iterrows()]
        candidates = block(embed(left_text), embed(right_text), self.block_k)
        text = {(i, j): pair_text(left_text[i], right_text[j], ("left", "right")) for i, j, _ in candidates}
        similarity = {(i, j): s for i, j, s in candidates}
        verdict: dict[tuple[int, int], tuple[bool, str]] = {}  # pair -> (match, judged by)
        asked: list[tuple[int, int]] = [(i, j) for i, j, _ in candidates]
        report: dict[str, Any] = {"pairs": len(left_text) * len(right_text), "candidates": len(candidates)}
        if self.cascade:
            sampled = sorted(random.Random(0).sample(asked, min(self.sample, len(asked))))
            answers = await run([(p, text[p]) for p in sampled])
            labels = {p: matched(answers.get(p)) for p in sampled}
            verdict.update({p: (m, "model") for p, m in labels.items()})
            ok = [p for p in sampled if not failed(answers.get(p))]
            accept = learn_threshold(
                [similarity[p] for p in ok], [labels[p] for p in ok], self.precision, self.delta / 2
            )
            reject = recall_threshold([similarity[p] for p in ok if labels[p]], self.recall, self.delta / 2)
            asked = []
            for p in (p for p in similarity if p not in verdict):
                if similarity[p] >= accept.value:
                    verdict[p] = (True, "similarity")
                elif similarity[p] < reject:
                    verdict[p] = (False, "similarity")
                else:
                    asked.append(p)
            report.update(
                sampled=len(sampled),
                accept=accept.to_dict(),
                reject=reject if reject != float("-inf") else None,
                accepted_by_similarity=sum(1 for m, by in verdict.values() if by == "similarity" and m),
                rejected_by_similarity=sum(1 for m, by in verdict.values() if by == "similarity" and not m),
            )
        answers = await run([(p, text[p]) for p in asked])
        verdict.update({p: (matched(answers.get(p)), "model") for p in asked})
        reached = sum(1 for _, by in verdict.values() if by == "model")
        report.update(
            reached_model=reached,
            share_reached_model=reached / len(candidates),
            matches=sum(1 for m, _ in verdict.values() if m),
        )
        self.report.update(report)
        return self._output([(p, similarity[p], by) for p, (m, by) in sorted(verdict.items()) if m])

    def _output(self, matches: list[tuple[tuple[int, int], float, str]]) -> Any:
        import pandas as pd

        both = set(self.left.columns) & set(self.right.columns)
        left = self.left.rename(columns={c: f"{c}_left" for c in both})
        right = self.right.rename(columns={c: f"{c}_right" for c in both})
        rows = []
        for (i, j), sim, by in matches:
            rows.append(
                {
                    **left.iloc[i].to_dict(),
                    **right.iloc[j].to_dict(),
                    "left_row": self.left.index[i],
                    "right_row": self.right.index[j],
                    "similarity": round(sim, 4),
                    "judged_by": by,
                }
            )
        columns = [*left.columns, *right.columns, "left_row", "right_row", "similarity", "judged_by"]
        return pd.DataFrame(rows, columns=columns)


def _columns(df: Any, given: list[str] | None, side: str) -> list[str]:
    cols = given or list(df.columns)
    absent = [c for c in cols if c not in df.columns]
    if absent:
        raise TableError(
            f"join: the {side} table has no column {absent[0]!r}; it has {', '.join(map(str, df.columns))}"
        )
    return cols


def join(left: Any, right: Any, condition: str, **kwargs: Any) -> JoinOp:
    """A semantic join of ``left`` and ``right`` on ``condition`` (see the module's docstring)."""
    return JoinOp(left, right, condition, **kwargs)
