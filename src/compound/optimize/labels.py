"""Classification steps: a short typed step over one rendered row whose one output field is a label.

``label_step`` constrains the reply to the given labels (on llama.cpp by grammar); ``classifier`` is the
same step with the field ``FIELD``, a strategy (e.g. self-consistency) and a name. The teaching recipe,
the comparisons and distilled students all build their classifiers here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import create_model

from compound.program.predict import Predict, Signature
from compound.program.rows import RowInput

#: the output field of a classification step made by ``classifier``
FIELD = "label"


def label_step(labels: Sequence[str], model: Any, field: str = "label", instruction: str | None = None) -> Predict:
    """A short typed classification step: one label field, constrained to ``labels``."""
    out = create_model("Label", **{field: (Literal[tuple(labels)], ...)})  # type: ignore[valid-type]
    text = instruction or f"Classify the text. Answer with one label from: {', '.join(labels)}."
    return Predict(
        Signature(RowInput, out, text), model=model, max_tokens=24, name=str(getattr(model, "model_id", model))
    )


def classifier(labels: list[str], model: Any, strategy: Any = None, name: str | None = None) -> Predict:
    """A classification step (``label_step`` with the field ``FIELD``), with a strategy and a name."""
    step = label_step(labels, model, FIELD)
    step.strategy, step.name = strategy, name
    return step


__all__ = ["FIELD", "label_step", "classifier"]
