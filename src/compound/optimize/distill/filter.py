"""RLAIF-lite: keep only the teacher outputs the teacher is sure of.

Any combination of three signals decides, and every row gets a decision with its reason:
- **agreement**: the share of the teacher's samples whose value equals the greedy one must reach
  ``min_agreement``;
- **judge**: an ``LLMJudge`` (a model, a criterion) gives a reason and a verdict: yes or no, or with a
  ``rubric`` a level from 1 to 5 that passes at ``pass_at`` or above;
- **requirements**: the program's own requirements, at MUST level, must pass (a requirement the program's
  strategy already validated on the teacher's answer is not run again: its validation is reused).

``write_decisions`` saves every kept and dropped example as JSON Lines, so the filter is auditable.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.control.requirements import MUST, LLMJudge, Requirement, validate_all
from compound.core.progress import Progress
from compound.optimize.distill.data import Labelled

DEFAULT_CRITERION = "The output is a correct answer for these inputs."


@dataclass
class Filter:
    min_agreement: float = 1.0
    judge: Any = None  # a model spec or Backend: adds an LLMJudge with ``criterion``
    criterion: str = DEFAULT_CRITERION
    use_requirements: bool = True
    rubric: Sequence[str] | None = None  # five levels, worst first: the judge grades instead of yes/no
    pass_at: int = 3  # the lowest rubric level kept

    def checks(self, program_requirements: list[Requirement]) -> list[Requirement]:
        reqs = [r for r in program_requirements if r.level == MUST] if self.use_requirements else []
        if self.judge is not None:
            reqs.append(LLMJudge(self.criterion, self.judge, MUST, self.rubric, self.pass_at))
        return reqs

    async def decide(
        self, rows: list[Labelled], program_requirements: Sequence[Requirement] = (), progress: bool = False
    ) -> list[Labelled]:
        """Set each row's ``decision`` (kept, reason, agreement, validations) and return the rows.
        ``progress``: a bar with the rows decided and the ETA (a judge makes this step long)."""
        reqs = self.checks(list(program_requirements))
        bar = Progress(progress, "filtering", len(rows), unit="rows")

        async def one(row: Labelled) -> None:
            greedy = row.greedy
            if greedy.error is not None:
                row.decision = {"kept": False, "reason": f"the teacher's reply did not parse: {greedy.error}"}
                return
            same = sum(c.error is None and c.value == greedy.value for c in row.samples)
            agreement = same / len(row.samples)
            decision: dict[str, Any] = {"agreement": round(agreement, 4)}
            if agreement < self.min_agreement:
                row.decision = {
                    **decision,
                    "kept": False,
                    "reason": f"teacher samples agree {same}/{len(row.samples)}, below {self.min_agreement:g}",
                }
                return
            # what the program's strategy already checked on this very answer is not checked again
            known = {v.requirement: v for v in greedy.validations}
            fresh = await validate_all([r for r in reqs if r.description not in known], greedy.value, row.inputs)
            found = iter(fresh)
            validations = [known[r.description] if r.description in known else next(found) for r in reqs]
            decision["validations"] = [v.to_dict() for v in validations]
            failed = [v for v in validations if not v.passed]
            if failed:
                row.decision = {**decision, "kept": False, "reason": "; ".join(v.reason for v in failed)}
            else:
                why = [f"teacher samples agree {same}/{len(row.samples)}"] + [
                    f"{v.requirement}: {v.reason}" for v in validations
                ]
                row.decision = {**decision, "kept": True, "reason": "; ".join(why)}

        async def counted(row: Labelled) -> None:
            await one(row)
            bar.update()

        try:
            await asyncio.gather(*(counted(r) for r in rows))
        finally:
            bar.stop()
        return rows


def write_decisions(rows: list[Labelled], path: Path) -> dict[str, int]:
    """Every row as one JSON line: inputs, the teacher's output and samples, kept or not, and why."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        for r in rows:
            greedy = r.greedy
            f.write(
                json.dumps(
                    {
                        "inputs": r.inputs,
                        "output": None if greedy.value is None else greedy.value.model_dump(mode="json"),
                        "samples": [c.text for c in r.samples],
                        "synthetic": r.synthetic,
                        **r.decision,
                    },
                    default=str,
                )
                + "\n"
            )
    os.replace(tmp, path)
    kept = sum(bool(r.decision.get("kept")) for r in rows)
    return {"rows": len(rows), "kept": kept, "dropped": len(rows) - kept, "synthetic": sum(r.synthetic for r in rows)}
