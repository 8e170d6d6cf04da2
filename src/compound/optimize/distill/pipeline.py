"""``Distill``: make a small model do a program's job by fine-tuning it on a teacher's sure answers.

A program of several steps gets a student per step, each from that step's answers in the teacher's runs
of the whole program (``program``; there also ``method="knn"``, students without training).

``Distill(teacher, student="smollm2-135m").compile(program, trainset)`` returns the program answered by
the student (a LoRA adapter on the embedded base, served by llama.cpp). Steps, each saved under ``out``:

1. the teacher labels the inputs (``trainset`` rows; gold columns are never read), after writing
   synthetic inputs where there are fewer than ``min_rows``;
2. the filter keeps what the teacher is sure of; ``examples.jsonl`` holds every row and the reason;
3. labels the teacher gave less often are oversampled (``max_repeat``; recorded as ``data.balance``);
4. LoRA training, resumable (``checkpoints/``), within the step and second budgets, on the student's
   prompt: the bare one (schema note and inputs), or with ``keep_prompt`` the program's own (recorded as
   ``prompt``; ``load_student`` serves the student with the prompt it learned);
5. export to ``adapter.gguf``; ``export_check.json`` holds the trained model's greedy replies and logits,
   for ``check_export``;
6. (``merge=True``) the adapter merged into the base weights as ``model.gguf``, served instead of the
   adapter when it answers a few training prompts as the adapter does (``merged``: as fast as the base);
7. ``student.json`` records the base, the adapter's and the merged file's sha256, the served model spec,
   costs and the loss curve; ``student.program.json`` is the saved program.

Reading a student back: ``load_student(out)`` gives the student program (its model is its own file or
the base with its adapter, so its cache identity is its own).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from compound.core.concurrency import run_sync
from compound.core.errors import ConfigurationError
from compound.core.settings import get_settings
from compound.core.usage import track_usage
from compound.optimize.distill.data import (
    as_teacher,
    balance,
    class_field,
    label,
    program_inputs,
    student_program,
    synthesize,
    training_examples,
)
from compound.optimize.distill.filter import Filter, write_decisions
from compound.optimize.distill.merged import served_spec
from compound.optimize.distill.report import plot, write_json
from compound.optimize.distill.train import TrainConfig
from compound.program.module import Module
from compound.program.predict import Predict

STUDENT_FORMAT = "compound.student"
STUDENT_VERSION = 1


def student_spec(base: str, adapter: Path) -> str:
    """The model spec of a base with a LoRA adapter (served by the llama.cpp backend)."""
    return f"{base}+lora={adapter.resolve()}"


@dataclass
class Distill:
    teacher: Any  # a model spec, a Backend, or a Predict that answers the task
    student: str = field(default_factory=lambda: get_settings().small)  # the embedded base model
    out: Path | str = "student"
    samples: int = 3
    filter: Filter = field(default_factory=Filter)
    min_rows: int = 0  # write synthetic inputs up to this many rows
    max_repeat: int = 3  # repeat a minority label's examples up to this many times (1: no balancing)
    train: TrainConfig = field(default_factory=TrainConfig)
    progress: bool = True
    check_prompts: int = 4  # greedy replies recorded in the training process, to check the GGUF against
    merge: bool = True  # serve the adapter merged into the base (checked first; see ``merged``)
    method: str = "lora"  # "lora": a fine-tuned student per step; "knn": per step, the nearest lessons as demos
    k: int = 4  # method="knn": the lessons shown per input
    demo_chars: int = 400  # method="knn": a lesson's long inputs are cut to this many characters
    keep_prompt: bool = False  # train on the program's own prompt (instructions, demos), not the bare one

    def compile(self, program: Module, trainset: list[dict[str, Any]], valset: Any = None, *, metric: Any = None):
        """The program answered by a distilled student. ``valset`` is not used (the teacher is the only
        supervision); evaluate the student with ``compound compare``. ``metric`` is used only for a program
        of several steps (or ``method="knn"``): only the teacher's runs that pass it give lessons."""
        return run_sync(self.acompile(program, trainset, metric=metric))

    async def acompile(self, program: Module, trainset: list[dict[str, Any]], *, metric: Any = None) -> Module:
        if not isinstance(program, Predict) or self.method != "lora":  # one student per step (``program``)
            from compound.optimize.distill.program import distill_program

            return await distill_program(self, program, trainset, metric)
        out = Path(self.out)
        out.mkdir(parents=True, exist_ok=True)
        inputs = [program_inputs(program, r) for r in trainset]
        teacher = as_teacher(program, self.teacher)
        with track_usage("distill.label") as label_usage:
            synthetic = []
            if len(inputs) < self.min_rows:
                synthetic = await synthesize(program, teacher.model, inputs, self.min_rows - len(inputs))
            flags = [False] * len(inputs) + [True] * len(synthetic)
            rows = await label(teacher, inputs + synthetic, self.samples, flags, self.progress)
        with track_usage("distill.filter") as filter_usage:
            await self.filter.decide(rows, teacher.requirements, self.progress)
        stats = write_decisions(rows, out / "examples.jsonl")
        examples = training_examples(student_program(program, self.student, self.keep_prompt), rows)
        if not examples:
            raise ConfigurationError(
                f"the filter kept none of the teacher's {len(rows)} answers, so there is nothing to train on; "
                f"{out / 'examples.jsonl'} says why each was dropped"
            )
        balanced = None
        if (field_name := class_field(program)) is not None and self.max_repeat != 1:
            examples, balanced = balance(examples, field_name, self.max_repeat)
        fit = fit_student(self.student, examples, out, self.train, self.progress, self.check_prompts, self.merge)
        record = {
            "format": STUDENT_FORMAT,
            "version": STUDENT_VERSION,
            "base": self.student,
            "adapter": "adapter.gguf",
            "adapter_sha256": fit["adapter_sha256"],
            "prompt": "program" if self.keep_prompt else "bare",
            "merged": fit["merged"],
            "teacher": getattr(teacher.model, "model_id", teacher.model),
            "program": {
                "inputs": list(program.signature.inputs.model_fields),
                "output_schema": program.output_type.model_json_schema(),
            },
            "data": {
                **stats,
                "training_examples": len(examples),
                "samples_per_row": self.samples,
                "balance": balanced,
            },
            "filter": asdict(self.filter) | {"judge": str(self.filter.judge) if self.filter.judge else None},
            "input_digests": sorted(input_digest(r.inputs) for r in rows),
            "cost": {
                "label_cpu_s": label_usage.total.cpu_s,
                "filter_cpu_s": filter_usage.total.cpu_s,
                "train_cpu_s": fit["train"]["cpu_s"],
                "merge_cpu_s": fit["merge_cpu_s"],
            },
            "train": fit["train"],
        }
        record["model"] = served_spec(out, record)
        student = student_program(program, record["model"], self.keep_prompt)
        student.save(out / "student.program.json")
        write_json(record, out / "student.json")
        return student


def input_digest(inputs: dict[str, Any]) -> str:
    """A row's identity (to check later that evaluation rows were not seen in training)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:20]


def fit_student(
    base: str,
    examples: list[dict[str, Any]],
    out: Path,
    cfg: TrainConfig,
    progress: bool = True,
    check_prompts: int = 4,
    merge: bool = True,
) -> dict[str, Any]:
    """Train (resuming any checkpoint in ``out/checkpoints``), export ``out/adapter.gguf``, record the
    trained model's greedy replies and logits for the export check (``check``), plot the loss curve, and
    (``merge``) write and check the merged model (``merged``; its entry is None without ``merge``)."""
    from compound.models.embedded import get_embedded
    from compound.models.lora import file_sha256
    from compound.optimize.distill.check import record as record_export_check
    from compound.optimize.distill.export import lora_pairs, write_gguf_adapter
    from compound.optimize.distill.merged import merge_student
    from compound.optimize.distill.train import load_base, lora_model, train

    gguf = get_embedded(base).path(get_settings().models_dir)
    fingerprint = hashlib.sha256(
        json.dumps([base, examples, asdict(cfg) | {"max_steps": None, "max_seconds": None}], sort_keys=True).encode()
    ).hexdigest()[:24]
    t0, cpu0 = time.monotonic(), time.process_time()
    tok, model = load_base(gguf)
    model = lora_model(model, cfg)
    load_cpu = time.process_time() - cpu0
    result = train(tok, model, examples, out / "checkpoints", cfg, fingerprint=fingerprint, progress=progress)
    adapter = write_gguf_adapter(lora_pairs(model), cfg.alpha, gguf, out / "adapter.gguf", name=f"{base}-student")
    prompts = [e["messages"] for e in examples[:check_prompts]]
    write_json(record_export_check(tok, model, prompts), out / "export_check.json")
    plot(result.losses, out / "loss.png")
    merge_cpu = time.process_time()
    merged = merge_student(out, base, [e["messages"] for e in examples]) if merge else None
    return {
        "adapter_sha256": file_sha256(adapter),
        "merged": merged,
        "merge_cpu_s": time.process_time() - merge_cpu,
        "train": asdict(result) | {"load_cpu_s": load_cpu, "config": asdict(cfg), "examples": len(examples)},
        "wall_s": time.monotonic() - t0,
    }


def read_record(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "student.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigurationError(f"{folder} is not a distilled student (no readable student.json: {e})") from None
    if record.get("format") != STUDENT_FORMAT or record.get("version", 0) > STUDENT_VERSION:
        raise ConfigurationError(f"{path} is not a student file this compound reads (format {STUDENT_FORMAT} v1)")
    return record


def load_student(program: Predict, folder: str | Path) -> tuple[Predict, dict[str, Any]]:
    """The student of ``program`` saved in ``folder``, and its record. Refuses a folder of another task
    (other inputs or output schema) and a model file whose sha256 changed since training."""
    folder = Path(folder)
    record = read_record(folder)
    task = {
        "inputs": list(program.signature.inputs.model_fields),
        "output_schema": program.output_type.model_json_schema(),
    }
    if task != record["program"]:
        raise ConfigurationError(
            f"the student in {folder} was trained for another task ({record['program']}), not {task}; "
            "pass the program (labels, fields) it was distilled for"
        )
    return student_program(program, served_spec(folder, record), record.get("prompt") == "program"), record


def check_export(folder: str | Path, base: str | None = None, threads: int | None = None) -> list[dict[str, Any]]:
    """llama.cpp with the exported adapter, in this process, against what the training process recorded:
    logits on the same token ids, the adapter's effect, and the greedy replies (see ``check.compare``)."""
    from compound.optimize.distill.check import compare

    folder = Path(folder)
    base = base or str(read_record(folder)["base"])
    return compare(folder, base, student_spec(base, folder / "adapter.gguf"), threads)
