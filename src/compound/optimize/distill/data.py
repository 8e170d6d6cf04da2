"""Training data for a student: the teacher labels the user's unlabelled inputs, after writing synthetic
inputs like them where there are too few.

Guarantees:
- gold labels are never read: an input row is reduced to the program's input fields first;
- each labelled row keeps every teacher sample (greedy first), so the filter can measure agreement and
  nothing the teacher said is lost; teacher calls go through the backend cache, so a rerun relabels
  nothing;
- synthetic inputs are marked ``synthetic: true``; near-copies (of each other or of real inputs, by
  word-set Jaccard similarity) are dropped;
- a training example is the exact chat the student program will send (its schema note and rendered
  inputs, no instructions and no demos; or, with ``keep_prompt``, the program's own prompt, for a student
  served where the program sends it) plus the teacher's reply as compact JSON;
- ``balance`` only repeats examples (never invents or drops one): a label the teacher gave less often is
  repeated, in order, until it has as many examples as the most common label or ``max_repeat`` times its
  own count, whichever is fewer; the counts before and after are returned for the record.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import create_model

from compound.core.concurrency import gather
from compound.core.errors import ConfigurationError
from compound.core.progress import Progress
from compound.models.typed import acall_typed, model_with, typed_request
from compound.program.predict import Predict


@dataclass
class Labelled:
    inputs: dict[str, Any]
    samples: list[Any]  # Candidate objects, greedy first
    synthetic: bool = False
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def greedy(self) -> Any:
        return self.samples[0]


def program_inputs(program: Predict, row: dict[str, Any]) -> dict[str, Any]:
    """Only the program's input fields of a row (a gold label column is never passed on)."""
    fields = list(program.signature.inputs.model_fields)
    missing = [f for f in fields if f not in row]
    if missing:
        raise ConfigurationError(f"an input row lacks the program's input field(s) {missing}; it has {sorted(row)}")
    return {f: row[f] for f in fields}


def as_teacher(program: Predict, teacher: Any) -> Predict:
    """The program answered by the teacher: the teacher itself when it is a Predict, else the same
    program with its model swapped for the teacher model."""
    if isinstance(teacher, Predict):
        return teacher
    return program.with_(model=teacher, name=f"teacher({program.step_name})")


async def label(
    teacher: Predict,
    inputs: list[dict[str, Any]],
    samples: int = 1,
    synthetic: list[bool] | None = None,
    progress: bool = False,
) -> list[Labelled]:
    """Every input with ``samples`` teacher candidates: first the program's own answer (its strategy run,
    a ``Repair`` round included, so the student learns what the program returns), then samples for the
    agreement filter. ``progress``: a bar with the rows done and the ETA."""
    flags = synthetic or [False] * len(inputs)
    bar = Progress(progress, "labelling", len(inputs), unit="rows")

    async def one(row: dict[str, Any], synth: bool) -> Labelled:
        checked = teacher._checked_inputs(row)
        cands = [(await teacher.aresult(**checked)).best]  # without a strategy: one greedy sample
        cands += [await teacher.sample(checked, i, ()) for i in range(1, samples)]
        bar.update()
        return Labelled(row, cands, synth)

    try:
        return await gather(one(r, s) for r, s in zip(inputs, flags, strict=True))
    finally:
        bar.stop()


# --- synthetic inputs -----------------------------------------------------------------------------------
def _words(row: dict[str, Any]) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", " ".join(str(v) for v in row.values()).lower()))


def dedupe(rows: list[dict[str, Any]], against: Sequence[dict[str, Any]] = (), threshold: float = 0.8) -> list[int]:
    """Indices of ``rows`` that are not near-copies (Jaccard >= threshold) of ``against`` or of an
    earlier kept row."""
    seen = [_words(r) for r in against]
    kept = []
    for i, row in enumerate(rows):
        w = _words(row)
        if not w or any(len(w & s) / max(1, len(w | s)) >= threshold for s in seen):
            continue
        seen.append(w)
        kept.append(i)
    return kept


async def synthesize(
    program: Predict, teacher_model: Any, examples: list[dict[str, Any]], count: int, batch: int = 5
) -> list[dict[str, Any]]:
    """Ask the teacher model for ``count`` new inputs like ``examples`` (deduplicated, near-copies dropped)."""
    fields = list(program.signature.inputs.model_fields)
    row_type = model_with("SyntheticInput", {f: (str, ...) for f in fields})
    many = create_model("SyntheticInputs", items=(list[row_type], ...))  # type: ignore[valid-type]
    shown = "\n".join(str({f: e[f] for f in fields}) for e in examples[:8])
    made: list[dict[str, Any]] = []
    attempts = 0
    while len(made) < count and attempts < max(3, 3 * count // batch):
        attempts += 1
        prompt = (
            f"Here are example inputs of a task ({program.instructions or program.step_name}):\n{shown}\n\n"
            f"Write {batch} new, varied inputs of the same kind and style. Do not copy the examples."
        )
        reply = await acall_typed(
            many, prompt, model=teacher_model, temperature=0.9, sample_index=attempts, max_tokens=160 * batch
        )
        new = [item.model_dump() for item in reply.value.items]
        made += [new[i] for i in dedupe(new, examples + made)]
    return made[:count]


# --- training examples ----------------------------------------------------------------------------------
def student_program(program: Predict, model: Any, keep_prompt: bool = False) -> Predict:
    """The student: the program's signature with no instructions and no demos, answered by ``model``; or,
    with ``keep_prompt``, the program itself (its instructions, demos, requirements and strategy) answered
    by ``model``, for a student that is served where the program's own prompt is sent (the Write page)."""
    if keep_prompt:
        return program.with_(model=model, name=f"student({program.step_name})")
    return Predict(
        program.signature,
        instructions="",
        demos=[],
        model=model,
        max_tokens=program.max_tokens,
        output_format=program.output_format,
        name=f"student({program.step_name})",
    )


def chat_of(student: Predict, inputs: dict[str, Any]) -> list[dict[str, str]]:
    """The messages the student program sends for ``inputs`` (what it is trained on)."""
    request = typed_request(student.output_spec, student.messages(inputs), student.instructions or None)
    return [m.to_dict() for m in request.messages]


def training_examples(student: Predict, rows: list[Labelled]) -> list[dict[str, Any]]:
    return [
        {"messages": chat_of(student, r.inputs), "reply": student.output_spec.render(r.greedy.value)}
        for r in rows
        if r.decision.get("kept")
    ]


# --- class balance --------------------------------------------------------------------------------------
def class_field(program: Predict) -> str | None:
    """The output field whose values are a closed set of labels (an enum or Literal), or None."""
    schema = program.output_type.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        if "$ref" in prop:
            prop = schema.get("$defs", {}).get(prop["$ref"].rsplit("/", 1)[-1], {})
        if "enum" in prop:
            return name
    return None


def balance(examples: list[dict[str, Any]], field: str, max_repeat: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Oversample the examples of minority labels of ``field`` (read from each teacher reply). Returns the
    examples (the originals in order, then the repeats) and ``{field, max_repeat, before, after}``."""
    if max_repeat < 1:
        raise ConfigurationError(f"max_repeat must be at least 1 (1 turns balancing off), not {max_repeat}")
    by_label: dict[str, list[dict[str, Any]]] = {}
    for e in examples:
        by_label.setdefault(str(json.loads(e["reply"]).get(field)), []).append(e)
    before = {k: len(v) for k, v in by_label.items()}
    most = max(before.values(), default=0)
    extra = []
    for group in by_label.values():
        want = min(most, max_repeat * len(group))
        extra += [group[i % len(group)] for i in range(want - len(group))]
    after = Counter(str(json.loads(e["reply"]).get(field)) for e in examples + extra)
    return examples + extra, {"field": field, "max_repeat": max_repeat, "before": before, "after": dict(after)}
