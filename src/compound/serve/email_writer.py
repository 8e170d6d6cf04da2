"""The email writer recipe: distil the Write page's writer into the small model (``compound distill
email-writer``).

Steps, each through compound's own mechanisms:

1. the teacher invents short boxes for seeded (recipient, topic, tone) draws (``email_boxes``); the
   first ``held_out`` are kept for evaluation and never drafted for training;
2. the teacher drafts each training box through ``WriteEmail`` (its ``Repair`` strategy and checks);
3. the distill pipeline's filter keeps the drafts that pass every requirement and that the judge does not
   rank below a control, the teacher's draft of another box, for their own box (``CRITERION``, pairwise in
   both orders, ``MIN_PREFERENCE``); ``examples.jsonl`` in the work folder says why each was kept or dropped;
4. the pipeline trains a LoRA student on the program's own prompt (``keep_prompt``: the page sends it),
   merges it into the base and checks the merge against the adapter (recorded as ``merged.check``);
5. the merged student (the very file that will be installed) and the teacher draft every held-out box
   through ``WriteEmail``: the share whose draft passes the checks, the CPU seconds per draft (physical
   plus cached: a resumed run reports what the drafts cost), and the judge's pairwise preference
   (``control.preference``: both orders). The merged model is scored itself, so the figures hold for
   what the page serves even where its greedy replies differ from the adapter's at near ties;
6. the merged model is installed where the page looks (``distilled_writer_path``) by a copy to a
   temporary name and a rename, so the page never sees half a file; then the report is written beside it
   (``email-writer.json``, format ``compound.email_writer`` v1).

Resuming: every model call (boxes, drafts, judge verdicts, evaluation) goes through the response cache
and training resumes from its last checkpoint, so running the same command again after an interruption
redoes only what was not finished. Nothing is installed until every step has finished.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compound.core.concurrency import gather, run_sync
from compound.core.errors import ConfigurationError
from compound.core.progress import Progress
from compound.core.settings import get_settings
from compound.core.usage import track_usage
from compound.optimize.distill.pipeline import input_digest
from compound.optimize.distill.report import write_json
from compound.optimize.distill.train import TrainConfig
from compound.serve.email_boxes import invent_boxes
from compound.serve.write_email import REPORT_FORMAT, REPORT_VERSION, WriteEmail, distilled_writer_path, report_path

CRITERION = (
    "The email is a good draft of the box: written to the box's recipient, it says what the box asks in the "
    "box's tone, reads naturally, and states no fact (a name, date, number, place or promise) the box does not give."
)
#: the filter's judge compares each draft with a control, the teacher's draft of another box, for the draft's
#: own box, in both orders; a draft is dropped when the control wins (preference below 0.5). The 1.5B teacher
#: asked for a verdict or a grade on one draft answered by copying the criterion: "no" for every draft at
#: first, then "5/5" for drafts of other boxes (docs/distillation.md); a comparison it can make
MIN_PREFERENCE = 0.5

# A rough forecast (the dry run): tokens per call (prompt, reply), and CPU seconds per token per GB of model
# file on one core, as measured for qwen2.5-coder-1.5b on a shared 2-core machine (prompt 0.004, decode 0.062)
TOKENS = {"box": (165, 25), "draft": (200, 100), "judge": (960, 120), "pair": (480, 60)}  # judge: two orders
DRAFT_ATTEMPTS = 1.3  # mean Repair attempts per draft
DECODE_S_PER_GB, PROMPT_S_PER_GB = 0.065, 0.005
TRAIN_S_PER_GB_TOKEN = 0.06  # forward + backward on CPU torch, fp32 (smollm2-135m: 0.0055 s a token)
TRAIN_TOKENS = 460  # a training example: the program's prompt with its instructions, and a draft
KEEP_SHARE = 0.8  # of teacher drafts, for the forecast


def default_train() -> TrainConfig:
    """Longer sequences than a label needs: the prompt with the program's instructions, and a whole draft."""
    return TrainConfig(max_len=768, epochs=3.0, batch_size=4, lr=1e-3, checkpoint_every=5)


@dataclass(frozen=True)
class EmailWriterRecipe:
    boxes: int = 300  # training boxes the teacher invents and drafts
    held_out: int = 20  # evaluation boxes, invented with the rest, never drafted for training
    teacher: str | None = None  # default: the settings' large model
    student: str | None = None  # default: the settings' small model
    judge: str | None = None  # default: the teacher
    seed: int = 0
    train: TrainConfig = field(default_factory=default_train)
    work: Path | None = None  # default: <home>/students/email-writer/work
    progress: bool = True

    # --- the parts, resolved --------------------------------------------------------------------------
    @property
    def teacher_model(self) -> str:
        return self.teacher or get_settings().large

    @property
    def student_base(self) -> str:
        return self.student or get_settings().small

    @property
    def judge_model(self) -> str:
        return self.judge or self.teacher_model

    @property
    def work_dir(self) -> Path:
        return self.work or distilled_writer_path().parent / "work"

    def check(self) -> None:
        if self.boxes < 1 or self.held_out < 1:
            raise ConfigurationError(f"--boxes ({self.boxes}) and --held-out ({self.held_out}) must each be at least 1")

    # --- the forecast -----------------------------------------------------------------------------------
    def forecast(self) -> dict[str, Any]:
        """Calls and a rough CPU forecast per step (from model file sizes and the TOKENS table)."""
        from compound.models.embedded import EMBEDDED

        self.check()

        def gb(spec: str) -> float:
            model = EMBEDDED.get(spec)
            if model is not None:
                return model.size_bytes / 1e9
            path = Path(spec.split("+lora=")[0])
            return path.stat().st_size / 1e9 if path.exists() else 1.0

        def cpu(spec: str, kind: str, calls: float) -> float:
            prompt, reply = TOKENS[kind]
            return calls * gb(spec) * (prompt * PROMPT_S_PER_GB + reply * DECODE_S_PER_GB)

        n, h = self.boxes, self.held_out
        kept = math.floor(n * KEEP_SHARE)
        steps = math.ceil(kept * self.train.epochs / self.train.batch_size)
        train_tokens = kept * self.train.epochs * TRAIN_TOKENS
        teacher, judge, student = self.teacher_model, self.judge_model, self.student_base
        rows = [
            {"step": "invent boxes", "calls": n + h, "cpu_s": cpu(teacher, "box", n + h)},
            {"step": "teacher drafts", "calls": n * DRAFT_ATTEMPTS, "cpu_s": cpu(teacher, "draft", n * DRAFT_ATTEMPTS)},
            {"step": "judge filter", "calls": n, "cpu_s": cpu(judge, "judge", n)},
            {"step": f"train ({steps} steps)", "calls": 0, "cpu_s": gb(student) * TRAIN_S_PER_GB_TOKEN * train_tokens},
            {
                "step": "evaluate",
                "calls": h * (2 * DRAFT_ATTEMPTS + 4),
                "cpu_s": cpu(teacher, "draft", h * DRAFT_ATTEMPTS)
                + cpu(student, "draft", h * DRAFT_ATTEMPTS)
                + cpu(judge, "pair", 4 * h),
            },
        ]
        return {
            "boxes": n,
            "held_out": h,
            "steps": rows,
            "calls": round(sum(r["calls"] for r in rows)),
            "cpu_s": sum(r["cpu_s"] for r in rows),
            "note": "rough: from model file sizes on one core; the response cache makes a rerun cheaper",
        }

    # --- the run ----------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        return run_sync(self.arun())

    async def arun(self) -> dict[str, Any]:
        """Every step (see the module docstring); returns the report, also written to ``report_path()``."""
        from compound.optimize.distill.filter import Filter
        from compound.optimize.distill.pipeline import Distill, read_record

        self.check()
        started, cpu0 = time.monotonic(), time.process_time()
        with track_usage("email-writer.boxes") as box_usage:
            boxes = await invent_boxes(self.teacher_model, self.boxes + self.held_out, self.seed, self.progress)
        if len(boxes) < self.held_out + 1:
            raise ConfigurationError(
                f"the teacher wrote only {len(boxes)} distinct boxes, fewer than --held-out {self.held_out} + 1; "
                "use a larger teacher or fewer --held-out"
            )
        held, trained = boxes[: self.held_out], boxes[self.held_out :]
        teacher = WriteEmail(model=self.teacher_model)
        job = Distill(
            teacher,
            student=self.student_base,
            out=self.work_dir,
            samples=1,
            filter=Filter(1.0, self.judge_model, CRITERION, pairwise=True, min_preference=MIN_PREFERENCE),
            max_repeat=1,
            train=self.train,
            progress=self.progress,
            keep_prompt=True,
            merge=True,
        )
        student = await job.acompile(teacher, [{"box": b["box"]} for b in trained])
        record = read_record(self.work_dir)
        merged = self.work_dir / record["merged"]["file"] if record.get("merged") else None
        scored = str(merged.resolve()) if merged is not None else getattr(student, "model", None)  # one Predict
        evaluation = await self.evaluate(held, teacher, WriteEmail(model=scored))
        installed = install(self.work_dir, record)
        report = {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "teacher": self.teacher_model,
            "student": self.student_base,
            "judge": self.judge_model,
            "criterion": CRITERION,
            "filter_judge": {"pairwise": "against another box's draft, both orders", "min_preference": MIN_PREFERENCE},
            "seed": self.seed,
            "installed": installed,
            "scored_model": scored,
            "boxes": {
                "asked": self.boxes + self.held_out,
                "invented": len(boxes),
                "training": len(trained),
                "held_out": len(held),
                "held_out_digests": [input_digest({"box": b["box"]}) for b in held],
                "examples": [b["box"] for b in trained[:5]],
            },
            "data": record["data"],
            "merged": record["merged"],
            "train": {
                k: record["train"][k] for k in ("steps", "total_steps", "stopped", "cpu_s") if k in record["train"]
            }
            | {"final_loss": (record["train"].get("losses") or [None])[-1], "config": asdict(self.train)},
            "cost": {"boxes_cpu_s": box_usage.total.cpu_s, **record["cost"]},
            "evaluation": evaluation,
            "work": str(self.work_dir),
            "wall_s": time.monotonic() - started,
            "process_cpu_s": time.process_time() - cpu0,
        }
        write_json(report, report_path())
        return report

    async def evaluate(self, boxes: list[dict[str, Any]], teacher: WriteEmail, student: WriteEmail) -> dict[str, Any]:
        """Each held-out box drafted by both programs; checks, CPU per draft and the judge's preference."""
        from compound.control.preference import prefer

        bar = Progress(self.progress, "evaluating", len(boxes), unit="boxes")

        async def draft(program: WriteEmail, box: str) -> dict[str, Any]:
            with track_usage("draft") as usage:
                result = await program.aresult(box=box)
            total = usage.total
            return {
                "passed": result.passed,
                "attempts": len(result.candidates),  # Repair's drafts
                "calls": result.calls,
                "value": None if result.value is None else result.value.model_dump(),
                "failed": [v.reason for v in result.best.validations if not v.passed],
                "cpu_s": total.cpu_s,
                "tokens": total.completion_tokens,
            }

        async def one(box: str) -> dict[str, Any]:
            t, s = await draft(teacher, box), await draft(student, box)
            if t["value"] is not None and s["value"] is not None:
                pref = await prefer(CRITERION, {"box": box}, s["value"], t["value"], model=self.judge_model)
            else:  # a program with no draft loses without a judge
                score = 0.5 if t["value"] is None and s["value"] is None else float(t["value"] is None)
                pref = {"score": score, "consistent": True, "verdicts": ["no draft"]}
            bar.update()
            return {"box": box, "teacher": t, "student": s, "preference": pref}

        try:
            rows = await gather(one(b["box"]) for b in boxes)
        finally:
            bar.stop()
        n = len(rows)

        def side(who: str) -> dict[str, Any]:
            drafts = [r[who] for r in rows]
            return {
                "checks_passed": sum(d["passed"] for d in drafts),
                "checks_passed_share": sum(d["passed"] for d in drafts) / n,
                "first_try_passed": sum(d["passed"] and d["attempts"] == 1 for d in drafts),
                "cpu_s_per_draft": sum(d["cpu_s"] for d in drafts) / n,
                "tokens_per_draft": sum(d["tokens"] for d in drafts) / n,
            }

        scores = [r["preference"]["score"] for r in rows]
        return {
            "boxes": n,
            "teacher": side("teacher"),
            "student": side("student"),
            "judge_preference": {
                "student_score": sum(scores) / n,  # 0.5: the judge rates them alike; 1.0: the student always
                "student_wins": sum(s == 1.0 for s in scores),
                "ties_or_split": sum(s == 0.5 for s in scores),
                "teacher_wins": sum(s == 0.0 for s in scores),
                "consistent_orders": sum(r["preference"]["consistent"] for r in rows),
            },
            "rows": rows,
        }


def install(work: Path, record: dict[str, Any]) -> str | None:
    """Copy the work folder's merged model to ``distilled_writer_path()`` (temporary name, then a rename).
    None when the student has no merged model (the page serves only a single GGUF file)."""
    merged = record.get("merged") or {}
    if not merged.get("file"):
        return None
    target = distilled_writer_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(work / merged["file"], tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return str(target)
