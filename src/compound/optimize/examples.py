"""A few labels from the user: gold examples for ``auto`` (``optimize.staged``), checked and split.

``check_examples`` turns (where, rendered row, label) triples into ``Examples`` or refuses them with a message
naming the problem and the fix: an unknown label, an empty label or row, the same row twice (with two labels,
always; with one label, in a file: a row counted twice would count twice in the certificate), fewer than
``MIN_EXAMPLES``. ``Examples.split`` deals a seeded random half of them (stratified by label) into the
*held-out* part, on which every student is certified against the gold labels and the teacher's own accuracy
is measured; the other half trains the students.

What the examples change in ``auto`` (the guarantee, stated):
- **The target becomes accuracy on gold.** By default it is the teacher's accuracy on the held-out examples
  (``MAX_TARGET`` at most; ``--target`` sets it instead). A stage is certified with the same fixed-sequence
  Clopper-Pearson test as without examples, on the held-out examples: with probability at least ``1 - delta``
  its kept answers are right (against gold) at the target or better, for rows drawn like the examples (the
  examples must be a random sample of rows like the job's: labelled rows picked for being easy or hard make
  the certificate say nothing about the others). So a student that beats its teacher on gold may answer rows
  the teacher would have got wrong.
- **The teacher's target is a point estimate** on the held-out examples (its standard error is printed): the
  student is shown to be at least that accurate, not shown to beat the teacher's true accuracy.
- **Training**: the students learn from the training examples and the teacher's labels of the job's rows,
  the examples repeated so that together they weigh as much as the teacher's labels (``repeats``), and from
  the examples alone when the teacher is weak (accuracy under ``WEAK``): a student taught a weak teacher's
  errors cannot beat it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from compound.core.errors import ConfigurationError
from compound.routing.calibrate import min_points

#: fewer examples than this are refused: half are held out, and 10 held-out rows can certify a student at
#: no more than 0.79 accuracy (delta 0.1, all 10 right) and measure the teacher's accuracy to about +-15 points
MIN_EXAMPLES = 20
#: a teacher whose accuracy on the held-out examples is under this is called weak: the summary says so and
#: asks for more examples, and its labels do not train the students
WEAK = 0.8
#: the most the target may be when it is the teacher's accuracy: a near-perfect teacher would otherwise set
#: a target no few dozen held-out rows could ever show (as ``optimize.auto``'s ``max_target``)
MAX_TARGET = 0.97
#: the most times one example is repeated in a training set (its weight against the teacher's labels)
MAX_REPEAT = 8
#: the stage name of a job row whose answer is its example's gold label
GOLD_STAGE = "example (gold)"


class ExamplesError(ConfigurationError):
    """Examples that cannot be used; the message names the row and the fix."""


@dataclass(frozen=True)
class Examples:
    """Gold (rendered row, label) pairs; ``source`` says where they came from (a file, or the input's column)."""

    rows: tuple[tuple[str, str], ...]
    source: str

    def split(self, seed: int = 0) -> tuple[list[int], list[int]]:
        """(training, held-out) indices into ``rows``: each label's rows shuffled (seeded), the labels one
        after the other, and the rows dealt alternately, the first to the held-out part: both halves hold
        every label that has two examples, in about its share, and differ in size by one at most."""
        rng = random.Random(seed)
        by_label: dict[str, list[int]] = {}
        for i, (_, label) in enumerate(self.rows):
            by_label.setdefault(label, []).append(i)
        dealt: list[int] = []
        for label in sorted(by_label):
            members = by_label[label]
            rng.shuffle(members)
            dealt += members
        return sorted(dealt[1::2]), sorted(dealt[0::2])


def check_examples(rows: Iterable[tuple[str, str, object]], labels: Sequence[str], source: str,
                   repeats_allowed: bool = False) -> Examples:  # fmt: skip
    """``rows``: (where, rendered row, label) with ``where`` naming the row for a message ("row 3"). Refuses
    unknown or empty labels, empty rows, one row with two labels, a row twice (unless ``repeats_allowed``:
    then it counts once) and fewer than ``MIN_EXAMPLES`` rows."""
    from compound.program.rows import is_missing

    known = {str(x) for x in labels}
    seen: dict[str, tuple[str, str]] = {}
    out: list[tuple[str, str]] = []
    unknown: Counter[str] = Counter()
    first_unknown = ""
    for where, text, raw in rows:
        if is_missing(raw):
            raise ExamplesError(f"{source}, {where}: the label is empty; give every example a label, or drop the row")
        if not text.strip():
            raise ExamplesError(f"{source}, {where}: the input columns are all empty; drop the row or fill them")
        label = str(raw).strip()
        if label not in known:
            unknown[label] += 1
            first_unknown = first_unknown or where
            continue
        if text in seen:
            where0, label0 = seen[text]
            if label0 != label:
                raise ExamplesError(
                    f"{source}: {where0} and {where} are the same row with two labels ({label0!r}, {label!r}); "
                    "keep the right one"
                )
            if not repeats_allowed:
                raise ExamplesError(
                    f"{source}: {where0} and {where} are the same row; give each example once (a repeated one "
                    "would count twice in the certificate)"
                )
            continue
        seen[text] = (where, label)
        out.append((text, label))
    if unknown:
        shown = ", ".join(f"{k!r} ({n} row{'s' * (n > 1)})" for k, n in unknown.most_common(5))
        raise ExamplesError(
            f"{source}: labels not among --labels: {shown}, first at {first_unknown}; the labels are "
            f"{', '.join(sorted(known))}: fix the examples or add the label"
        )
    if len(out) < MIN_EXAMPLES:
        raise ExamplesError(
            f"{source}: {len(out)} example(s); at least {MIN_EXAMPLES} are needed: half are held out to certify "
            f"the students against, and fewer than {MIN_EXAMPLES // 2} held-out rows cannot certify a student even "
            "at 0.8 accuracy (delta 0.1), nor measure the teacher's accuracy to better than about 15 points"
        )
    return Examples(tuple(out), source)


def repeats(examples: int, teacher_labels: int) -> int:
    """How many times each training example is repeated: together they weigh as much as the teacher's
    labels (at least once, ``MAX_REPEAT`` times at most)."""
    if examples <= 0:
        return 0
    return max(1, min(MAX_REPEAT, round(teacher_labels / examples)))


def standard_error(accuracy: float, rows: int) -> float:
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(1, rows))


def examples_needed(target: float, delta: float) -> int:
    """Examples (half held out) below which no student can be certified at ``target``, all held-out right;
    a student that is sometimes wrong needs several times more."""
    return 2 * min_points(target, delta)


__all__ = [
    "Examples",
    "ExamplesError",
    "check_examples",
    "repeats",
    "examples_needed",
    "MIN_EXAMPLES",
    "WEAK",
    "MAX_TARGET",
    "GOLD_STAGE",
]
