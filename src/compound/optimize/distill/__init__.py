"""Distillation: a LoRA student of a small embedded model, fine-tuned on a teacher's sure answers and served
by llama.cpp (see ``pipeline`` for the steps and what each one saves). Names load lazily, so the CLI
stays quick to start."""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "Distill": "pipeline",
    "load_student": "pipeline",
    "read_record": "pipeline",
    "input_digest": "pipeline",
    "student_spec": "pipeline",
    "Filter": "filter",
    "TrainConfig": "train",
}


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
