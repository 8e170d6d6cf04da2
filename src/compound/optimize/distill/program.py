"""``Distill`` on a program of several steps: each step's teacher answers become that step's lessons.

The teacher (the program with every step on the teacher model, or a program with the same steps) runs on
the training inputs; each run is recorded step by step (``optimize.runs``): the inputs a step saw and the
answer it gave. Every step then gets its own student from its own lessons:

- ``method="lora"``: a LoRA student of the small base per step, each made by the one-step pipeline
  (``pipeline``) in ``<out>/steps/<step path>/`` from the inputs that step saw (the teacher's step answers
  them again, through the response cache, with its samples for the agreement filter);
- ``method="knn"``: no training: the step, on the student model, takes the ``k`` lessons nearest to each
  input as its demos (``optimize.knn.KNNPredict``; its lessons are saved with the program).

Guarantees:
- gold outputs are never read unless a ``metric`` is given: then only runs that pass it (score 1.0 against
  the row's gold) give lessons, and the record says how many runs did; without one every run counts (a
  run whose reply never parsed gives the lessons of the steps before it);
- a step the teacher's runs never reached stops the distillation with the step's name, before any training;
- the program passed in is not changed; ``<out>/student.program.json`` is the saved student program and
  ``<out>/program.json`` the record (lessons per step, the method, the teacher's cost).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compound.core.errors import ConfigurationError
from compound.core.usage import track_usage
from compound.optimize.base import Metric, clone, program_inputs, steps
from compound.optimize.distill.report import write_json
from compound.optimize.knn import KNNPredict, replace_step
from compound.optimize.runs import teacher_program, traced_runs
from compound.program.module import Module

if TYPE_CHECKING:
    from compound.optimize.distill.pipeline import Distill

PROGRAM_FORMAT = "compound.distilled_program"
PROGRAM_VERSION = 1


def _inputs(program: Module, trainset: list[dict[str, Any]], keep_gold: bool) -> list[dict[str, Any]]:
    names = program_inputs(program)
    for i, row in enumerate(trainset):
        missing = [n for n in names if n not in row]
        if missing:
            raise ConfigurationError(f"trainset row {i} lacks the program's input(s) {missing}; it has {sorted(row)}")
    return [dict(r) if keep_gold else {n: r[n] for n in names} for r in trainset]


def _teacher(program: Module, teacher: Any) -> Module:
    made = teacher_program(program, teacher)
    want, got = [p for p, _ in steps(program)], [p for p, _ in steps(made)]
    if want != got:
        raise ConfigurationError(
            f"the teacher program has the steps {got}, the program to distill {want}: give a teacher model "
            "(a model spec or backend) or a program with the same steps"
        )
    return made


async def distill_program(
    job: Distill, program: Module, trainset: list[dict[str, Any]], metric: Metric | None
) -> Module:
    """The program with a student for every step (module docstring)."""
    if job.method not in ("lora", "knn"):
        raise ConfigurationError(f"Distill method must be 'lora' or 'knn', not {job.method!r}")
    if not trainset:
        raise ConfigurationError("Distill.compile needs a non-empty trainset (the inputs the teacher answers)")
    out = Path(job.out)
    rows = _inputs(program, trainset, keep_gold=metric is not None)
    teacher = _teacher(program, job.teacher)
    with track_usage("distill.label") as label_usage:
        runs = await traced_runs(teacher, rows, metric)
    kept = [run for run, score in runs if score >= 1.0]
    lessons = {path: [run[path] for run in kept if path in run] for path, _ in steps(program)}
    unreached = [path or "(program)" for path, found in lessons.items() if not found]
    if unreached:
        raise ConfigurationError(
            f"no teacher run {'that passed the metric ' if metric else ''}reached step(s) {unreached} "
            f"({len(kept)} of {len(runs)} runs kept): give more or other rows, or a stronger teacher"
        )
    student = clone(program)
    teacher_steps = dict(steps(teacher))
    per_step: dict[str, Any] = {}
    for path, step in steps(student):
        name = path or "program"
        if job.method == "knn":
            names = set(step.signature.inputs.model_fields) | set(step.output_type.model_fields)
            examples = [{k: v for k, v in ex.items() if k in names} for ex in lessons[path]]
            new = KNNPredict.from_step(step.with_(model=job.student), examples, job.k, job.demo_chars)
            per_step[name] = {"lessons": len(examples)}
        else:
            sub = dataclasses.replace(job, teacher=teacher_steps[path], out=out / "steps" / name)
            step_inputs = [{k: ex[k] for k in step.signature.inputs.model_fields if k in ex} for ex in lessons[path]]
            new = await sub.acompile(step, step_inputs)
            per_step[name] = {"lessons": len(step_inputs), "folder": str(sub.out)}
        replace_step(student, step, new)
    out.mkdir(parents=True, exist_ok=True)
    student.save(out / "student.program.json")
    record = {
        "format": PROGRAM_FORMAT,
        "version": PROGRAM_VERSION,
        "method": job.method,
        "student": job.student,
        "teacher": _name(job.teacher),
        "runs": len(runs),
        "kept_runs": len(kept),
        "metric": metric is not None,
        "steps": per_step,
        "cost": {"label_cpu_s": label_usage.total.cpu_s, "label_calls": label_usage.total.calls},
    }
    write_json(record, out / "program.json")
    return student


def _name(teacher: Any) -> str:
    if isinstance(teacher, Module):
        return type(teacher).__name__
    return str(getattr(teacher, "model_id", teacher))


__all__ = ["distill_program"]
