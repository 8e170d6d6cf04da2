"""``auto``'s second student: a LoRA fine-tune of a small model, trained only when the job pays for it.

After ``teach`` has its labelled sample and has certified (or not) the embedding student, ``LoraStudent``
estimates what a distilled student (``optimize.distill``) would save on the rows still bound for the
teacher, from what this job measured (the teacher's CPU per labelled row) and two ratios (defaults set
from ``benchmarks/distill.py`` and ``benchmarks/teach.py``; ``benchmarks/README.md``):

    saving = rows to the teacher x teacher CPU per row x (1 - cpu_ratio)
    cost   = training examples x train_cpu_per_example + calibration rows x student CPU per row

It trains the student only when ``saving >= payback x cost`` (3 by default: the student will not be
certified for every row, and the estimates are coarse), when the ``[train]`` extra is installed, and when
enough held-out rows would reach it to certify it at all. The report says which, with every figure used.

When picked: the reference labels ``teach`` already has (the teacher's, or gold) are split; the student
learns from ``1 - holdout`` of them (no new teacher call), then answers the held-out rows that the
embedding student would pass on (those it would meet in the job), with its token-logprob confidence. Its
threshold is learned there with the same Clopper-Pearson fixed-sequence test, at the same target and
``delta``, so its guarantee is about the rows it will answer. It becomes the cascade's middle stage. A
stage certified for nothing is skipped by the cascade, so a student that failed costs only its making;
everything it cost (training, calibration answers) is in ``teach``'s one-time usage.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compound.core.settings import get_settings
from compound.core.usage import local_work
from compound.program.predict import Predict
from compound.routing.calibrate import learn_threshold, lower_bound
from compound.routing.cascade import Cascade, LLMStage


def _default_train() -> Any:
    from compound.optimize.distill.train import TrainConfig

    return TrainConfig(epochs=1.0, lr=2e-3)


def min_certifiable(target: float, delta: float, limit: int = 10_000) -> int:
    """The fewest calibration rows, all agreeing, whose lower bound reaches ``target`` at ``delta``."""
    n = 1
    while n < limit and lower_bound(n, n, delta) < target:
        n = math.ceil(n * 1.1) + 1
    return n


@dataclass
class LoraStudent:
    base: str = field(default_factory=lambda: get_settings().small)  # the small model
    cpu_ratio: float = 0.2  # student CPU per row / the teacher's
    train_cpu_per_example: float = 2.0  # CPU-s per training example and epoch (an upper estimate)
    payback: float = 3.0  # train only when the estimated saving is this many times the cost
    holdout: float = 0.4  # share of the labelled rows kept out of training, to certify the student on
    min_examples: int = 64
    folder: Path | str | None = None  # default: <compound home>/students/<fingerprint of the data>
    train: Any = field(default_factory=_default_train)
    progress: bool = True

    def decide(
        self,
        rows_to_teacher: float,
        teacher_cpu_per_row: float,
        labelled: int,
        calibration_rows: float,
        needed: int,
    ) -> dict[str, Any]:
        """Whether to train, with the estimates and the reason (pure: no side effects)."""
        examples = int(labelled * (1 - self.holdout))
        cost = examples * self.train_cpu_per_example * self.train.epochs + (
            labelled * self.holdout * teacher_cpu_per_row * self.cpu_ratio
        )
        saving = rows_to_teacher * teacher_cpu_per_row * (1 - self.cpu_ratio)
        figures = {
            "rows_to_teacher": round(rows_to_teacher, 1),
            "teacher_cpu_per_row": teacher_cpu_per_row,
            "examples": examples,
            "estimated_cost_cpu_s": round(cost, 1),
            "estimated_saving_cpu_s": round(saving, 1),
            "payback": self.payback,
            "calibration_rows": round(calibration_rows, 1),
            "rows_needed_to_certify": needed,
        }
        refusals = [
            (
                importlib.util.find_spec("peft") is None or importlib.util.find_spec("torch") is None,
                "the [train] extra is not installed",
            ),
            (examples < self.min_examples, f"{examples} training examples, fewer than {self.min_examples}"),
            (
                calibration_rows < needed,
                f"about {calibration_rows:.0f} held-out rows would reach it, {needed} are needed to certify it",
            ),
            (
                saving < self.payback * cost,
                f"the job is too short: saving {saving:.0f} < {self.payback:g} x cost {cost:.0f} CPU s",
            ),
        ]
        reason = next((why for refused, why in refusals if refused), None)
        if reason is not None:
            return {**figures, "picked": False, "reason": reason}
        return {**figures, "picked": True, "reason": f"saving {saving:.0f} >= {self.payback:g} x cost {cost:.0f} CPU s"}

    def split(self, n: int, seed: int) -> tuple[list[int], list[int]]:
        """(training rows, held-out rows) of ``n`` labelled rows, a seeded draw."""
        order = list(range(n))
        random.Random(seed).shuffle(order)
        cut = round(n * self.holdout)
        return sorted(order[cut:]), sorted(order[:cut])

    def fit(self, step: Predict, field_name: str, texts: Sequence[str], labels: Sequence[str]) -> tuple[Predict, dict]:
        """Train the student on ``(texts, labels)`` and return its step (token logprobs on) and its record."""
        from compound.optimize.distill.data import balance, chat_of, student_program
        from compound.optimize.distill.merged import merge_student, served_spec
        from compound.optimize.distill.pipeline import fit_student

        shape = student_program(step, self.base)
        output = step.output_type
        examples = [
            {"messages": chat_of(shape, {"row": t}), "reply": output(**{field_name: y}).model_dump_json()}
            for t, y in zip(texts, labels, strict=True)
        ]
        examples, balanced = balance(examples, field_name, 3)
        key = hashlib.sha256(json.dumps([self.base, examples, asdict(self.train)], sort_keys=True).encode())
        folder = Path(self.folder or get_settings().home / "students" / key.hexdigest()[:16])
        folder.mkdir(parents=True, exist_ok=True)
        with local_work():  # counted in every active tracker: teach's one-time usage
            fit = fit_student(self.base, examples, folder, self.train, self.progress, check_prompts=0, merge=False)
        # merged outside that block: its check makes model calls, counted as calls
        fit["merged"] = merge_student(folder, self.base, [e["messages"] for e in examples])
        record = {"folder": str(folder), "examples": len(examples), "balance": balanced, **fit}
        spec = served_spec(folder, {"base": self.base, "adapter": "adapter.gguf", **fit})
        student = student_program(step, spec)
        return student.with_(logprobs=True, name="lora student"), record

    async def add_to(
        self,
        cascade: Cascade,
        texts: Sequence[str],
        labels: Sequence[str],
        proxy_answers: Sequence[tuple[str, float]],
        *,
        target: float,
        delta: float,
        rows_to_teacher: float,
        teacher_cpu_per_row: float,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Decide, and when picked train the student, certify it and make it the cascade's middle stage.
        ``proxy_answers`` are the embedding student's out-of-fold answers on ``texts``."""
        proxy_threshold = cascade.thresholds[0].value
        passed_on = sum(c < proxy_threshold for _, c in proxy_answers) / max(1, len(texts))
        needed = min_certifiable(target, delta)
        decision = self.decide(
            rows_to_teacher, teacher_cpu_per_row, len(texts), len(texts) * self.holdout * passed_on, needed
        )
        if not decision["picked"]:
            return decision
        train_rows, held_out = self.split(len(texts), seed)
        held_out = [i for i in held_out if proxy_answers[i][1] < proxy_threshold]  # what it would meet
        teacher_step = cascade.stages[-1]
        assert isinstance(teacher_step, LLMStage)
        student, record = self.fit(
            teacher_step.step, teacher_step.field, [texts[i] for i in train_rows], [labels[i] for i in train_rows]
        )
        stage = LLMStage(student, teacher_step.field, "lora student")
        got = await stage.answer([texts[i] for i in held_out])
        threshold = learn_threshold(
            [c for _, c in got], [a == labels[i] for (a, _), i in zip(got, held_out, strict=True)], target, delta
        )
        cascade.stages.insert(len(cascade.stages) - 1, stage)
        cascade.thresholds.append(threshold)  # thresholds are per stage but the last: the student's is last
        cascade.answered_by[stage.name] = 0
        return {
            **decision,
            "student": {k: record[k] for k in ("folder", "examples", "adapter_sha256", "merged")},
            "train_cpu_s": record["train"]["cpu_s"],
            "calibration_rows": len(held_out),
            "threshold": threshold.to_dict(),
            "certified": threshold.accepted > 0,
        }
