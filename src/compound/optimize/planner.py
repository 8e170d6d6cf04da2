"""``auto``'s planner: what a job would cost with the large model alone, what teaching may spend, and
whether each student stage pays, from the job's length and per-row costs measured on the job itself.

The economics. A label the teacher gives one of the job's own rows *is* that row's answer: it is never
asked again. So every row costs one teacher call (labelled, or escalated because no student is certified
for it) or a student's answer; teaching's only true overhead is local work (embedding the rows, training
students, their predictions). With ``c`` the teacher's measured CPU per row, ``N`` the job's rows and
``k`` the rows students have answered so far:

    total = (N - k) x c + overhead   and   total <= (1 + slack) x N x c  <=>  overhead <= slack x N x c + k x c

**The guarantee** (``Allowance``): before each piece of local work, the planner checks that what was
spent plus that piece's forecast stays within ``slack x N x c + k x c`` (the saving already banked by
certified students counts: those rows will never reach the teacher). Work it cannot forecast to fit is
not started; a training run gets the remaining allowance as a hard CPU cap and stops there. So a job is
never more than ``1 + slack`` (1.05 by default) times the large model alone, one-time costs included, as
measured by the teacher's mean CPU per row. On a job too short to teach (embedding its rows alone would
pass the allowance), the planner says so and the teacher answers every row.

The assumption stated: rows escalated to the teacher cost what its labelled rows cost on average (the
labelled rows are a random draw, in part; escalated rows are the ones students were unsure of, which may
be longer). ``Forecast`` gives what the large model alone would cost and what ``auto`` expects to spend,
one-time and per row, and the break-even row count; everything here is pure (no model, no clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: the most a job may cost, as a share over the large model alone, by default
SLACK = 0.05


@dataclass(frozen=True)
class Costs:
    """Per-row and per-example CPU seconds, measured on the job (or defaults before they are)."""

    teacher: float  # one teacher call (a labelled or escalated row)
    embed: float = 0.01  # embedding one row (the first stage's features)
    embed_load: float = 4.0  # loading the embedder once (MiniLM on 2 cores: 2 to 4 CPU s)
    ngrams: float = 0.0003  # one row's character n-grams (before measured on a first chunk: 0.0001 on titles)
    fit_load: float = 1.5  # importing scikit-learn and the first fit of the embedding student
    # the fine-tuned MiniLM on Rotten Tomatoes snippets (128 tokens, batch 16), measured on a loaded 2-core
    # machine: 0.30 CPU s per example and epoch, 0.032 CPU s per row answered. Priors only: ``staged``
    # measures one training batch on the job before it decides (0.05 on Stack Overflow titles, quiet)
    encoder_infer: float = 0.03  # one row through the fine-tuned encoder
    encoder_train: float = 0.3  # one training example, one epoch, forward and backward
    lora_infer_ratio: float = 0.2  # the LoRA student's CPU per row / the teacher's

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in self.__dict__.items()}


@dataclass
class Allowance:
    """The guarantee's ledger: local work may not push the job past ``(1 + slack) x`` the large model."""

    rows: int
    teacher_cpu: float
    slack: float = SLACK
    spent: float = 0.0  # local work so far (CPU s)
    banked_rows: int = 0  # unlabelled rows students answer (never sent to the teacher)
    refused: list[str] = field(default_factory=list)

    @property
    def limit(self) -> float:
        return (self.slack * self.rows + self.banked_rows) * self.teacher_cpu

    @property
    def left(self) -> float:
        return self.limit - self.spent

    def fits(self, forecast: float, what: str) -> bool:
        """Whether ``what``, forecast to cost ``forecast`` CPU s, may start; a refusal is recorded."""
        ok = self.spent + forecast <= self.limit
        if not ok:
            self.refused.append(
                f"{what}: forecast {forecast:.1f} CPU s, {max(0.0, self.left):.1f} left of the allowance "
                f"({self.slack:g} x {self.rows} rows x {self.teacher_cpu:.3f} CPU s + {self.banked_rows} rows banked)"
            )
        return ok

    def spend(self, cpu_s: float) -> None:
        self.spent += cpu_s

    def bank(self, rows: int) -> None:
        self.banked_rows += rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "teacher_cpu_per_row": self.teacher_cpu,
            "slack": self.slack,
            "spent_cpu_s": round(self.spent, 2),
            "banked_rows": self.banked_rows,
            "limit_cpu_s": round(self.limit, 2),
            "refused": list(self.refused),
        }


@dataclass(frozen=True)
class StagePlan:
    """One stage's forecast: CPU once (training), CPU per row that reaches it, the share of the job's rows
    it is expected to answer."""

    name: str
    one_time: float
    per_row: float
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "one_time_cpu_s": round(self.one_time, 2), "per_row_cpu_s": self.per_row,
                "share": round(self.share, 4)}  # fmt: skip


@dataclass(frozen=True)
class Forecast:
    """What a job of ``rows`` rows costs with the large model alone and what ``auto`` expects."""

    rows: int
    costs: Costs
    stages: tuple[StagePlan, ...]  # in order; the teacher's share is what the students leave
    slack: float = SLACK

    @property
    def large_alone(self) -> float:
        return self.rows * self.costs.teacher

    @property
    def teacher_share(self) -> float:
        return max(0.0, 1.0 - sum(s.share for s in self.stages))

    @property
    def one_time(self) -> float:
        return sum(s.one_time for s in self.stages)

    @property
    def per_row(self) -> float:
        """Expected CPU per row: every stage's per-row cost on the rows that reach it, and the teacher's."""
        reach, cost = 1.0, 0.0
        for s in self.stages:
            cost += reach * s.per_row
            reach -= s.share
        return cost + self.teacher_share * self.costs.teacher

    @property
    def expected(self) -> float:
        """Expected total, capped by the guarantee."""
        return min(self.one_time + self.rows * self.per_row, (1 + self.slack) * self.large_alone)

    @property
    def break_even_rows(self) -> float:
        """Rows after which the one-time cost is paid back (inf: never)."""
        gain = self.costs.teacher - self.per_row
        return math.ceil(self.one_time / gain) if gain > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "costs": self.costs.to_dict(),
            "stages": [s.to_dict() for s in self.stages],
            "teacher_share": round(self.teacher_share, 4),
            "large_alone_cpu_s": round(self.large_alone, 1),
            "one_time_cpu_s": round(self.one_time, 1),
            "per_row_cpu_s": round(self.per_row, 4),
            "expected_cpu_s": round(self.expected, 1),
            "x_large": round(self.expected / self.large_alone, 4) if self.large_alone else None,
            "break_even_rows": self.break_even_rows if math.isfinite(self.break_even_rows) else None,
            "bound_x_large": 1 + self.slack,
        }

    def lines(self, watts_per_core: float, usd_per_row: float | None = None) -> list[str]:
        """The forecast as a user reads it: CPU s, joules (estimated at ``watts_per_core``), and dollars where
        the teacher is priced (``usd_per_row``: its measured cost per call; local work costs none)."""

        def money(cpu: float, teacher_rows: float) -> str:
            dollars = f", ${teacher_rows * usd_per_row:.4f}" if usd_per_row else ""
            return f", {cpu * watts_per_core:,.0f} J" + dollars

        out = [
            f"large model alone: {self.rows:,} rows x {self.costs.teacher:.3f} CPU s = {self.large_alone:,.0f} CPU s"
            + money(self.large_alone, self.rows)
        ]
        for s in self.stages:
            out.append(
                f"  {s.name}: once {s.one_time:,.1f} CPU s, {s.per_row:.4f} CPU s per row reaching it, "
                f"expected to answer {s.share:.0%} of rows"
            )
        out.append(f"  teacher: {self.teacher_share:.0%} of rows at {self.costs.teacher:.3f} CPU s")
        even = f"{self.break_even_rows:,.0f} rows" if math.isfinite(self.break_even_rows) else "never"
        out.append(
            f"auto expects: once {self.one_time:,.0f} + {self.per_row:.4f} per row = {self.expected:,.0f} CPU s"
            + money(self.expected, self.teacher_share * self.rows)
            + f" ({self.expected / max(self.large_alone, 1e-9):.2f}x; never above {1 + self.slack:.2f}x); "
            f"break-even at {even}"
        )
        return out


def pays(saving: float, cost: float, payback: float = 1.5) -> bool:
    """Whether a stage whose forecast ``saving`` is this many times its ``cost`` is worth making."""
    return cost <= 0 or saving >= payback * cost
