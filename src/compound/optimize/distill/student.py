"""A distilled classification student loaded for evaluation (``compound compare``'s ``student:DIR``).

Guarantees: the student answers with the labels it was trained on (read from its ``student.json``); rows
it saw while being made (their digests are in the record) are refused, never scored; its one-time cost is
what its record says making it cost.
"""

from __future__ import annotations

from pathlib import Path

from compound.core.errors import ConfigurationError
from compound.optimize.distill.pipeline import input_digest, load_student, read_record
from compound.optimize.labels import FIELD, classifier
from compound.program.predict import Predict


def student_classifier(folder: str | Path, texts: list[str] | None = None) -> Predict:
    """The classification student in ``folder`` (as ``compound compare``'s ``student:DIR`` config), with
    the labels it was trained on. Given the rendered rows to be scored, refuses any the student saw."""
    record = read_record(folder)
    try:
        labels = record["program"]["output_schema"]["properties"][FIELD]["enum"]
    except KeyError:
        raise ConfigurationError(f"the student in {folder} is not a classifier (no {FIELD!r} labels)") from None
    if texts is not None:
        seen = set(record["input_digests"]) & {input_digest({"row": t}) for t in texts}
        if seen:
            raise ConfigurationError(
                f"{len(seen)} of the rows to evaluate were labelled for the student in {folder}; "
                "evaluate on other rows (a smaller --limit, or distill with fewer --rows)"
            )
    program, _ = load_student(classifier(labels, None), folder)
    program.name = "student"
    return program


def student_one_time_cpu_s(folder: str | Path) -> float:
    """What making the student cost once: teacher labelling, filtering and training (CPU seconds)."""
    return sum(read_record(folder)["cost"].values())


__all__ = ["student_classifier", "student_one_time_cpu_s"]
