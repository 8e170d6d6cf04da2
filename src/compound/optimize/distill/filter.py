"""RLAIF-lite: keep only the teacher outputs the teacher is sure of.

Any combination of three signals decides, and every row gets a decision with its reason:
- **agreement**: the share of the teacher's samples whose value equals the greedy one must reach
  ``min_agreement``;
- **judge**: an ``LLMJudge`` (a model, a criterion) gives a reason and a verdict; or, with ``pairwise``, the
  judge compares each output with a control, the output of another row, for this row's inputs, in both
  orders (``control.preference``), and the row is kept unless the control wins: its ``score`` (the share
  of the two verdicts won by the row's own output, a tie a half) must reach ``min_preference`` (0.5: a
  judge that favours a position, or cannot tell, drops nothing; one that prefers another row's output
  for these inputs in both orders drops the row);
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

from compound.control.requirements import MUST, LLMJudge, Requirement, Validation, validate_all
from compound.core.progress import Progress
from compound.optimize.distill.data import Labelled

DEFAULT_CRITERION = "The output is a correct answer for these inputs."


@dataclass
class Filter:
    min_agreement: float = 1.0
    judge: Any = None  # a model spec or Backend: adds an LLMJudge with ``criterion``
    criterion: str = DEFAULT_CRITERION
    use_requirements: bool = True
    pairwise: bool = False  # the judge compares each output with another row's (see the module docstring)
    min_preference: float = 0.5

    def checks(self, program_requirements: list[Requirement]) -> list[Requirement]:
        reqs = [r for r in program_requirements if r.level == MUST] if self.use_requirements else []
        if self.judge is not None and not self.pairwise:
            reqs.append(LLMJudge(self.criterion, model=self.judge, level=MUST))
        return reqs

    async def decide(
        self, rows: list[Labelled], program_requirements: Sequence[Requirement] = (), progress: bool = False
    ) -> list[Labelled]:
        """Set each row's ``decision`` (kept, reason, agreement, validations) and return the rows.
        ``progress``: a bar with the rows decided and the ETA (a judge makes this step long)."""
        reqs = self.checks(list(program_requirements))
        controls = _controls(rows) if self.pairwise else {}
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
            if self.pairwise and self.judge is not None and all(v.passed for v in validations):
                validations.append(await self._versus_control(row, controls.get(id(row))))
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

    async def _versus_control(self, row: Labelled, control: Labelled | None) -> Validation:
        """The pairwise judge's validation of ``row``'s output against ``control``'s, for ``row``'s inputs."""
        from compound.control.preference import prefer

        if control is None:
            return Validation(self.criterion, MUST, True, 0.5, "no other row's output to compare with: not judged")
        got = await prefer(self.criterion, row.inputs, row.greedy.value, control.greedy.value, model=self.judge)
        won = sum(v == "first" for v in got["verdicts"])
        lost = sum(v == "second" for v in got["verdicts"])
        reason = (
            f"against the output for {control.inputs} (a control), this output won {won} of 2 orders and lost "
            f"{lost}: preference {got['score']:g}, {'at least' if got['score'] >= self.min_preference else 'below'} "
            f"{self.min_preference:g}"
        )
        return Validation(self.criterion, MUST, got["score"] >= self.min_preference, got["score"], reason)


def _controls(rows: list[Labelled]) -> dict[int, Labelled]:
    """Each parsed row's control: the next parsed row (cyclically) whose inputs differ from its own."""
    parsed = [r for r in rows if r.greedy.error is None]
    out: dict[int, Labelled] = {}
    for i, row in enumerate(parsed):
        others = (parsed[(i + k) % len(parsed)] for k in range(1, len(parsed)))
        control = next((o for o in others if o.inputs != row.inputs), None)
        if control is not None:
            out[id(row)] = control
    return out


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
