"""``auto`` at job scale: label rows where they teach most, train the student stages that pay, answer
every row once, and never cost more than the large model alone (``optimize.planner``'s guarantee).

``plan_and_answer`` runs on the job's own (distinct) rows:

1. **Measure.** The teacher labels a first random round; its CPU per row (a cached reply counts at the
   CPU it cost when computed) sets the allowance (``planner.Allowance``). These labels are those rows'
   answers.
2. **Too short?** If embedding every row would not fit the allowance, it says so and stops: the teacher
   answers every row (no stage is made).
3. **Embedding student, in rounds.** Each round the teacher labels more rows: half drawn at random into
   the *hold-out* ``H``, half chosen by the active sampler (``students.active``: the least certain row of
   each k-means cluster under the current student) into the *training set* ``T``. The student (a
   logistic regression over the embeddings and the rows' character n-grams, ``students.embedding`` and
   ``students.ngrams``) learns on ``T`` only and is certified on ``H`` only, with the fixed-sequence
   Clopper-Pearson test of ``routing.calibrate``: ``H`` is a random draw, so the guarantee (with
   probability ``1 - delta`` the answers it keeps agree with the teacher at ``target`` or better) is
   exact, although ``T`` is biased towards hard rows. Rounds stop when the last one banked more rows than
   the best round before it, but fewer more than it labelled, while its student is certified (labels no
   longer pay; a round below the best is the certificate's noise, and labelling goes on: ``_stop``), at
   the label cap, or when the allowance would be passed. The student of the last round is the one
   deployed and certified (no choice among rounds, which would weaken the guarantee).
4. **Fine-tuned encoder** (``students.encoder``), when the forecast saving on the rows the first stage
   leaves is ``payback`` times its cost and the cost fits the allowance (its cost per training example
   measured on one batch of ``T`` first, not a prior): trained on ``T`` under a hard CPU cap, certified on
   the hold-out rows that reach it (those the first stage leaves), same test.
5. **LoRA student** of the small model (``optimize.auto_lora``), on long jobs only: when its own
   decision (the saving on the rows still left, at its measured CPU ratio, against its training cost,
   ``payback`` times) says it pays and its forecast fits the allowance; trained on ``T``, certified on the
   hold-out rows that reach it. Its answers are model calls: their CPU is spent from the allowance too.
6. **Teacher** for the rest, at job time: a row labelled in the rounds is never asked again.

**With examples** (gold rows from the user, ``optimize.examples``): the training examples among the job's rows
are answered by their gold labels (banked); the teacher answers the held-out examples and its accuracy on
them is measured (on examples that are not rows of the job, from the allowance: on a job too short to pay
for it, it says so and the teacher answers the rest). The stages are then certified against the held-out
examples' gold, at the teacher's measured accuracy (or ``target``), so a student that beats its teacher may
answer rows; except where the teacher is not weak and the held-out examples are too few to certify at its
accuracy (fewer than twice ``min_points``): then against the teacher's labels as above. A weak teacher's
labels (accuracy under ``examples.WEAK``) do not train the students, and its rounds stop after the first.

The result is a ``Decided`` program (the rows' answers decided here, the teacher for the others) and a
report with every figure: the plan, the allowance ledger, each stage's certificate and share of rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from compound.core.errors import ConfigurationError
from compound.core.usage import local_work, track_usage
from compound.optimize.examples import GOLD_STAGE, MAX_TARGET, WEAK, Examples, repeats, standard_error
from compound.optimize.planner import SLACK, Allowance, Costs, Forecast, StagePlan, pays
from compound.optimize.students.embedding import PrecomputedEmbeddings, embed_texts
from compound.optimize.students.ngrams import char_ngrams, ngram_counts, tf_idf
from compound.program.module import Module
from compound.program.predict import Predict
from compound.routing.calibrate import Threshold, learn_threshold, min_points
from compound.routing.cascade import LLMStage

#: the default agreement target without examples. Not 0.95: a job of a few thousand rows affords a hold-out of
#: a few hundred teacher labels, on which the fixed-sequence Clopper-Pearson test (delta 0.1) certifies 0.95 only
#: where the student agrees with the teacher on about 98% of its most confident quarter; on Stack Overflow tags
#: (2,000 rows) it certified nothing at 0.95, and at 0.9 the students answered 37% of the rows at the teacher's
#: accuracy (+0.2 points on gold: a student's confident rows are often ones the teacher gets wrong)
TARGET = 0.9
#: the first threshold tested accepts this share of the hold-out (as ``optimize.auto``'s START)
START = 0.25
#: per-row priors for local work before it is measured on the job (the teacher's cost is always measured)
PRIORS = Costs(teacher=0.0)
#: whether the first stage reads each row's character n-grams beside its embedding (``students.ngrams``: on
#: 2,000 Stack Overflow titles its share of the rows went from 23-53% to 58-64%; on sentiment, no change)
CHAR_NGRAMS = True
#: the share of rows a fine-tuned encoder is expected to answer of those the first stage leaves, before
#: it is measured (used only to decide whether to train it)
ENCODER_PRIOR = 0.5


class Decided(Module):
    """Answers decided before the job (students' and the teacher's labels), the teacher for every other row."""

    runtime_attrs = ("answered_by",)

    def __init__(self, teacher: LLMStage, answers: dict[str, tuple[str, str]], name: str = "auto") -> None:
        self.teacher = teacher
        self.answers = answers  # row text -> (label, stage that gave it)
        self.name = name
        self.answered_by: dict[str, int] = {}

    @property
    def step_name(self) -> str:
        return self.name

    async def aforward(self, row: str) -> dict[str, Any]:
        if row in self.answers:
            label, stage = self.answers[row]
        else:
            ((label, _),) = await self.teacher.answer([row])
            stage = "teacher"
        self.answered_by[stage] = self.answered_by.get(stage, 0) + 1
        return {self.teacher.field: label, "stage": stage}


class _Refused(Exception):
    """Local work the allowance could not pay for (its reason is the message)."""


class _Run:
    """One planning run's state (see the module doc). ``texts`` are the job's rows, then the examples that
    are not among them (``n`` counts the job's rows only)."""

    def __init__(self, texts: list[str], teacher: LLMStage, target: float, delta: float, slack: float, seed: int):
        self.texts, self.teacher, self.target, self.delta = texts, teacher, target, delta
        self.n = len(texts)
        self.slack, self.rng = slack, random.Random(seed)
        self.seed = seed
        self.labels: dict[int, str] = {}
        self.hold: list[int] = []
        self.train: list[int] = []
        self.teacher_cpu = 0.0
        self.teacher_calls = 0
        self.decided: dict[int, tuple[str, str]] = {}  # unlabelled row -> (label, stage)
        self.report: dict[str, Any] = {"rounds": [], "stages": {}}
        self.allowance: Allowance | None = None
        self.reaching: list[int] = []  # hold-out rows that no earlier stage answered: the next one's certificate
        # with examples (``optimize.examples``): gold labels by row, the held-out and training ones, the
        # teacher's answers on the held-out ones, and whether its labels train the students
        self.gold: dict[int, str] = {}
        self.gold_hold: list[int] = []
        self.gold_train: list[int] = []
        self.teacher_gold: dict[int, str] = {}
        self.teacher_teaches = True
        self.against_gold = False  # whether stages are certified against the held-out examples

    def add_examples(self, examples: Examples) -> None:
        """The examples as rows: a job row that is an example is that row (its answer is the gold label),
        the others are appended after the job's rows."""
        where = {t: i for i, t in enumerate(self.texts[: self.n])}
        index = []
        for text, label in examples.rows:
            i = where.get(text)
            if i is None:
                i = len(self.texts)
                self.texts.append(text)
            self.gold[i] = label
            index.append(i)
        train, hold = examples.split(self.seed)
        self.gold_train, self.gold_hold = [index[k] for k in train], [index[k] for k in hold]

    @property
    def cert(self) -> list[int]:
        """The rows stages are certified on: the held-out examples (gold), else the teacher's random hold-out."""
        return self.gold_hold if self.against_gold else self.hold

    def reference(self, i: int) -> str:
        return self.gold[i] if self.against_gold else self.labels[i]

    def training(self) -> tuple[list[int], list[str]]:
        """The students' training rows and labels: the teacher's labels of the training rows (of its hold-out
        too, when the examples certify) unless it is too weak to teach, and the training examples, repeated
        to weigh as much (``examples.repeats``)."""
        rows = (self.train + (self.hold if self.against_gold else [])) if self.teacher_teaches else []
        rows += self.gold_train * repeats(len(self.gold_train), len(rows))
        return rows, [self.gold[i] if i in self.gold else self.labels[i] for i in rows]

    def unlabelled(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.labels and i not in self.gold]

    async def label(self, hold: list[int], train: list[int]) -> None:
        rows = hold + train
        for i, label in zip(rows, await self.ask(rows), strict=True):
            self.labels[i] = label
        self.hold += hold
        self.train += train

    async def ask(self, rows: list[int]) -> list[str]:
        """The teacher's labels of ``rows``, its CPU measured (a cached reply at the CPU it cost when computed)."""
        with track_usage("auto: teacher labels") as used:
            answers = await self.teacher.answer([self.texts[i] for i in rows]) if rows else []
        self.teacher_cpu += used.total.cpu_s
        self.teacher_calls += len(rows)
        if self.allowance is not None:  # the allowance follows the teacher's CPU per row as more is measured
            self.allowance.teacher_cpu = self.cpu_per_label
        return [label for label, _ in answers]

    @property
    def cpu_per_label(self) -> float:
        return self.teacher_cpu / max(1, self.teacher_calls)

    @contextmanager
    def local(self, forecast: float, what: str) -> Iterator[list[float]]:
        """The one gate for local work: refused (``_Refused``) unless its forecast fits the allowance;
        measured as one ``local_work`` (counted in the one-time usage) and spent from the allowance."""
        assert self.allowance is not None
        if not self.allowance.fits(forecast, what):
            raise _Refused(self.allowance.refused[-1])
        with local_work() as spent:
            yield spent
        self.allowance.spend(spent[1])

    @contextmanager
    def spend(self, forecast: float, what: str) -> Iterator[Any]:
        """Like ``local`` for work that makes model calls too (a LoRA student's training and answers): the
        block's whole usage, calls and local work, is spent from the allowance."""
        assert self.allowance is not None
        if not self.allowance.fits(forecast, what):
            raise _Refused(self.allowance.refused[-1])
        with track_usage() as used:
            yield used
        self.allowance.spend(used.total.cpu_s)

    def certify(self, confidences: Sequence[float], answers: Sequence[str], rows: Sequence[int]) -> Threshold:
        agrees = [a == self.reference(i) for a, i in zip(answers, rows, strict=True)]
        return learn_threshold([float(c) for c in confidences], agrees, self.target, self.delta, start=START)


def _draw(run: _Run, pool: list[int], k: int) -> list[int]:
    return run.rng.sample(pool, min(k, len(pool)))


async def plan_and_answer(
    texts: Sequence[str],
    teacher: LLMStage,
    *,
    target: float | None = None,
    delta: float = 0.1,
    slack: float = SLACK,
    first: int = 32,
    label_cap: float = 0.3,
    max_labels: int = 1500,
    encoder: Any = None,
    lora: Any = None,
    payback: float = 1.5,
    costs: Costs | None = None,
    examples: Examples | None = None,
    seed: int = 0,
) -> tuple[Decided, dict[str, Any]]:
    """Plan and run ``auto`` on ``texts`` (see the module doc). ``encoder``: an ``EncoderClassifier`` to
    use as the second stage (default: one over the default embedder; ``False``: no second stage).
    ``lora``: a ``LoraStudent`` (``optimize.auto_lora``) to try as the third stage on long jobs.
    ``costs`` gives per-row priors for local work (the teacher's is always measured). ``examples``: gold
    rows (``optimize.examples``): the stages are then certified against them, and ``target`` (default: the
    teacher's accuracy on them; without examples, ``TARGET`` agreement with the teacher) is accuracy on gold."""
    if (target is not None and not 0 < target < 1) or not 0 < delta < 1:
        raise ConfigurationError("target and delta must be in (0, 1)")
    uniq = list(dict.fromkeys(texts))
    run = _Run(list(uniq), teacher, TARGET if target is None else target, delta, slack, seed)
    if examples is not None:
        run.add_examples(examples)
    with track_usage("auto: one-time") as one_time:
        await _stages(run, first, label_cap, max_labels, encoder, lora, payback, costs, target)
    answers = {uniq[i]: (label, "teacher (label)") for i, label in run.labels.items()}
    answers.update({uniq[i]: decided for i, decided in run.decided.items()})
    answers.update({uniq[i]: (label, GOLD_STAGE) for i, label in run.gold.items() if i < run.n})
    shares: dict[str, int] = {}
    for _, stage in answers.values():
        shares[stage] = shares.get(stage, 0) + 1
    shares["teacher"] = run.n - len(answers)
    run.report.update(
        rows=run.n,
        teacher_labelled=len(run.labels),
        hold_out=len(run.cert),
        one_time=one_time.total.to_dict(),
        rows_by_stage=shares,
        certified=any(s.get("certified") for s in run.report["stages"].values()),
        allowance=run.allowance.to_dict() if run.allowance else None,
        # the forecast made here, before the job: the teacher's rows at its measured CPU per row
        expected_job_cpu_s=shares["teacher"] * run.cpu_per_label,
        teacher_cpu_per_row=run.cpu_per_label,
        target=run.target,
        delta=delta,
    )
    if examples is not None:
        run.report["examples"] = _examples_record(run, examples, target)
    return Decided(teacher, answers), run.report


async def _stages(
    run: _Run,
    first: int,
    label_cap: float,
    max_labels: int,
    encoder: Any,
    lora: Any,
    payback: float,
    costs: Costs | None,
    target: float | None,
) -> None:
    report = run.report
    order = run.unlabelled()
    run.rng.shuffle(order)
    start = order[:first]
    await run.label(start[::2], start[1::2])  # random: alternately hold-out and training rows
    if not run.unlabelled():
        report["plan"] = "the teacher labelled every row in its first round"
        return
    priors = costs or PRIORS
    run.allowance = Allowance(run.n, run.cpu_per_label, run.slack)
    if run.gold:  # room is kept for embedding the rows: a measurement with no student after it is wasted
        reserve = priors.embed_load + len(run.texts) * priors.embed + priors.fit_load
        stop = await _measure_teacher(run, target, reserve)
        if stop:
            report["plan"] = stop
            return
    too_short = (
        f"too short to teach: {run.n} rows at {run.cpu_per_label:.3f} CPU s each allow "
        f"{run.allowance.limit:.1f} CPU s of local work; the teacher answers every other row"
    )
    try:
        vectors, embed_cost = _embed(run, priors)
        ngrams = None
        if CHAR_NGRAMS:
            ngrams, ngram_cost = _ngrams(run, priors)
            embed_cost += ngram_cost
    except _Refused:
        report["plan"] = too_short
        return
    student = PrecomputedEmbeddings(vectors, ngrams)
    cap = min(max_labels, max(first, int(label_cap * run.n)))
    step = max(16, min(200, run.n // 25))
    threshold, probs = await _rounds(run, student, cap, step, priors.fit_load)
    record: dict[str, Any] = {"cpu_s_per_row": embed_cost, "certified": False}
    report["stages"]["embedding student"] = record
    if probs is None:
        report["plan"] = too_short
        return
    conf1 = probs.max(axis=1)
    record.update(threshold=threshold.to_dict(), certified=threshold.accepted > 0)
    answers1 = [(student.labels[int(p.argmax())], float(p.max())) for p in probs]
    record["answers"] = _bank(run, answers1[: run.n], list(range(run.n)), threshold, "embedding student")
    _on_gold(run, record, [answers1[i][0] for i in run.gold_hold], run.gold_hold)
    leaves = [i for i in run.unlabelled() if i not in run.decided]
    measured = Costs(
        teacher=run.cpu_per_label,
        embed=embed_cost,
        embed_load=0.0,
        encoder_infer=priors.encoder_infer,
        encoder_train=priors.encoder_train,
    )
    run.reaching = [i for i in run.cert if conf1[i] < threshold.value]
    if encoder is not False and leaves:
        try:
            await _encoder(run, encoder, measured, leaves, payback)
        except _Refused as why:
            report["stages"]["fine-tuned encoder"]["skipped"] = str(why)
    leaves = [i for i in run.unlabelled() if i not in run.decided]
    if lora is not None and leaves:
        try:
            await _lora(run, lora, leaves)
        except _Refused as why:
            report["stages"]["lora student"]["skipped"] = str(why)
    report["forecast"] = _forecast(run, measured).to_dict()
    taught = [k for k, v in report["stages"].items() if v.get("certified")]
    report["plan"] = "taught: " + (", ".join(taught) if taught else "no stage could be certified")


def _embed(run: _Run, priors: Costs) -> tuple[Any, float]:
    """Every row's embedding: the embedder loaded (a one-time cost, measured apart), then ``_chunked``.
    (The loading once counted in the first chunk's rate, which made a 2,000-row job "too short to teach"
    whenever the embedder was not yet loaded in the process.)"""
    import numpy as np

    with run.local(priors.embed_load + priors.embed, "loading the embedder"):
        embed_texts(run.texts[:1])  # loads it once per process; this row is embedded again below
    parts, rate = _chunked(run, embed_texts, priors.embed, "embedding")
    return np.vstack(parts), rate


def _ngrams(run: _Run, priors: Costs) -> tuple[Any, float]:
    """Every row's character n-grams (``students.ngrams``), by ``_chunked``, then weighed by TF-IDF."""
    from scipy import sparse

    parts, rate = _chunked(run, ngram_counts, priors.ngrams, "character n-grams")
    with run.local(0.0, "weighing the character n-grams") as spent:  # a pass over the counts: counted, not gated
        weighed = tf_idf(sparse.vstack(parts, format="csr"))
    return weighed, rate + spent[1] / len(run.texts)


def _chunked(run: _Run, compute: Any, prior: float, what: str, probe: int = 64) -> tuple[list[Any], float]:
    """``compute`` over every row (the job's rows and the examples that are not among them): a first chunk
    at ``prior`` CPU s a row, the rest at the rate that chunk measured; the parts, and the CPU per row
    of the last; ``_Refused`` where the allowance cannot pay."""
    rows = len(run.texts)
    head = min(probe, rows)
    with run.local(head * prior, f"{what} of a first chunk of rows") as spent:
        parts = [compute(run.texts[:head])]
    rate = spent[1] / head
    if head < rows:
        with run.local((rows - head) * rate, f"{what} of the other rows") as spent:
            parts.append(compute(run.texts[head:]))
        rate = spent[1] / (rows - head)
    return parts, rate


async def _rounds(
    run: _Run, student: PrecomputedEmbeddings, cap: int, step: int, fit_load: float
) -> tuple[Threshold, Any]:
    """Label rounds for the embedding student until they stop paying; its threshold and probabilities
    (None when not even a first student fit the allowance)."""
    from compound.optimize.students.active import choose

    rounds = run.report["rounds"]
    need = min_points(run.target, run.delta)  # hold-out rows below which nothing can be certified
    best_share, forecast = 0.0, fit_load
    threshold, probs = Threshold(math.inf, run.target, run.delta, 0, 0.0, 0.0), None
    while True:
        try:
            with run.local(forecast, "training and certifying the embedding student") as spent:
                rows, labels = run.training()
                student.fit(cast(Any, rows), labels)  # rows by index
                new_probs = student.probabilities(list(range(len(run.texts))))
                conf = new_probs.max(axis=1)
                answers = [student.labels[int(b)] for b in new_probs.argmax(axis=1)]
                new_threshold = run.certify([conf[i] for i in run.cert], [answers[i] for i in run.cert], run.cert)
                pool = run.unlabelled()
                banked = int(sum(conf[i] >= new_threshold.value for i in pool))
        except _Refused as why:
            if rounds:
                rounds[-1]["stop"] = str(why)
            break
        threshold, probs, forecast = new_threshold, new_probs, 1.5 * spent[1]
        rounds.append({"labelled": len(run.labels), "hold_out": len(run.cert), "banked": banked,
                       "threshold": threshold.to_dict()})  # fmt: skip
        if not run.teacher_teaches:
            rounds[-1]["stop"] = "the teacher is weak: its labels do not train the students, more would not help"
            break
        room = len(run.labels) + step <= cap and len(pool) > step
        # the gain over the best round before: rows banked beyond what its share of the pool would bank
        # (the pool shrinks by the labels of each round, so raw counts fall even where nothing changed)
        stop = _stop(rounds, round(banked - best_share * len(pool)), step, 2 * need, cap, room)
        if stop:
            rounds[-1]["stop"] = stop
            break
        best_share = max(best_share, banked / max(1, len(pool)))
        try:
            with run.local(forecast, "choosing the next rows"):
                hold = [] if run.against_gold else _draw(run, pool, step // 2)  # certified on the examples
                drawn = set(hold)
                rest = [i for i in pool if i not in drawn]
                train = choose(student.vectors, probs, rest, step - len(hold), seed=run.seed + len(rounds))
        except _Refused as why:
            rounds[-1]["stop"] = str(why)
            break
        await run.label(hold, train)
    return threshold, probs


def _stop(
    rounds: list[dict[str, Any]], gained: int, step: int, hold_out_needed: int, cap: int, room: bool
) -> str | None:
    """Why the label rounds stop after the last of ``rounds`` (None: they go on). ``gained``: the rows it
    banked beyond what the best round before it would have banked of the same pool (its share of it). A
    round pays when it banks more rows than it labels (``step``; labels of rows the student would have
    answered are the only labels that cost anything: the others would have gone to the teacher), so the
    rounds stop once a certified round (the third or later, on a hold-out of at least ``hold_out_needed``
    rows) gains fewer. A round that banks fewer rows than the best
    one is not that: a student learns no less from more labels, while the test on a few hundred hold-out
    rows certifies a share that varies by half from one round to the next, so a dip is the certificate's
    noise, and stopping there would deploy the lesser student (the last round's, as the guarantee requires);
    labelling goes on. ``room``: whether another round fits under the label ``cap``."""
    last = rounds[-1]
    certified = last["threshold"]["value"] is not None
    if certified and last["hold_out"] >= hold_out_needed and len(rounds) > 2 and 0 <= gained < step:
        return f"the last round banked {gained} rows beyond the best before it, for {step} labels: labels no longer pay"
    if not room:
        return f"label cap {cap} reached"
    return None


def _bank(
    run: _Run, answers: Sequence[tuple[str, float]], rows: Sequence[int], threshold: Threshold, stage: str
) -> int:
    """The unlabelled, undecided ``rows`` whose ``answers`` reach the stage's threshold become its answers."""
    taken = 0
    for (label, confidence), i in zip(answers, rows, strict=True):
        if i not in run.labels and i not in run.decided and i not in run.gold and confidence >= threshold.value:
            run.decided[i] = (label, stage)
            taken += 1
    assert run.allowance is not None
    run.allowance.bank(taken)
    return taken


async def _encoder(run: _Run, encoder: Any, costs: Costs, leaves: list[int], payback: float) -> None:
    """The fine-tuned encoder on the rows the first stage leaves, when it pays and fits (module doc, 4)."""
    from compound.optimize.students.encoder import EncoderClassifier

    assert run.allowance is not None
    encoder = encoder or EncoderClassifier()
    hold = run.reaching
    texts, labels = run.training()
    record: dict[str, Any] = {"hold_out_reaching": len(hold), "rows_reaching": len(leaves), "certified": False}
    run.report["stages"]["fine-tuned encoder"] = record
    if len(hold) < min_points(run.target, run.delta):
        record["skipped"] = f"{len(hold)} hold-out rows reach it: too few to certify it at any agreement"
        return
    # its cost per training example measured on one batch of this job's rows (the prior was 6x off on short
    # texts, and refused a stage that fitted); an answer costs about half a training example (no backward pass)
    probe = encoder.settings.batch_size * costs.encoder_train
    with run.local(probe, "measuring the fine-tuned encoder's training on one batch"):
        per_example = encoder.probe([run.texts[i] for i in texts], labels)
    infer = (len(hold) + len(leaves)) * per_example / 2
    cost = len(texts) * encoder.settings.epochs * per_example + infer
    saving = len(leaves) * ENCODER_PRIOR * costs.teacher
    record.update(forecast_cost_cpu_s=round(cost, 1), forecast_saving_cpu_s=round(saving, 1),
                  probe_cpu_s_per_example=round(per_example, 4))  # fmt: skip
    if not pays(saving, cost, payback):
        record["skipped"] = f"does not pay: saving {saving:.0f} < {payback:g} x cost {cost:.0f} CPU s"
        return
    with run.local(cost - infer, "training the fine-tuned encoder"):
        record["training"] = encoder.fit([run.texts[i] for i in texts], labels, cpu_cap=run.allowance.left - infer)
    rows = hold + leaves
    with run.local(len(rows) * record["training"]["cpu_s_per_example"] / 2, "the encoder's answers") as spent:
        answers = encoder.predict([run.texts[i] for i in rows])
    record["cpu_s_per_row"] = spent[1] / max(1, len(rows))
    threshold = run.certify([c for _, c in answers[: len(hold)]], [a for a, _ in answers[: len(hold)]], hold)
    record.update(threshold=threshold.to_dict(), certified=threshold.accepted > 0)
    record["answers"] = _bank(run, answers[len(hold) :], leaves, threshold, "fine-tuned encoder")
    _on_gold(run, record, [a for a, _ in answers[: len(hold)]], hold)
    run.reaching = [i for (_, c), i in zip(answers, hold, strict=False) if c < threshold.value]


async def _lora(run: _Run, lora: Any, leaves: list[int]) -> None:
    """The LoRA student of the small model (``optimize.auto_lora``) on the rows still left, when its own
    decision (``LoraStudent.decide``: saving against cost, measured teacher CPU) says it pays and its forecast
    fits the allowance; trained on the training rows, certified on the hold-out rows that reach it."""
    assert run.allowance is not None
    hold = run.reaching
    c = run.cpu_per_label
    from compound.optimize.auto_lora import min_certifiable

    needed = min_certifiable(run.target, run.delta)
    train, labels = run.training()
    decision = lora.decide(len(leaves), c, round(len(train) / (1 - lora.holdout)), len(hold), needed)
    record: dict[str, Any] = {**decision, "certified": False}
    run.report["stages"]["lora student"] = record
    if not decision["picked"]:
        record["skipped"] = decision["reason"]
        return
    rows = hold + leaves
    teacher = run.teacher
    with run.spend(decision["estimated_cost_cpu_s"], "training the LoRA student"):
        step, made = lora.fit(teacher.step, teacher.field, [run.texts[i] for i in train], labels)
    record["student"] = {k: made.get(k) for k in ("folder", "examples")}
    stage = LLMStage(step, teacher.field, "lora student")
    with run.spend(len(rows) * lora.cpu_ratio * c, "the LoRA student's answers") as used:
        answers = await stage.answer([run.texts[i] for i in rows])
    record["cpu_s_per_row"] = used.total.cpu_s / max(1, len(rows))
    threshold = run.certify([x for _, x in answers[: len(hold)]], [a for a, _ in answers[: len(hold)]], hold)
    record.update(threshold=threshold.to_dict(), certified=threshold.accepted > 0)
    record["answers"] = _bank(run, answers[len(hold) :], leaves, threshold, "lora student")
    _on_gold(run, record, [a for a, _ in answers[: len(hold)]], hold)
    run.reaching = [i for (_, x), i in zip(answers, hold, strict=False) if x < threshold.value]


async def _measure_teacher(run: _Run, target: float | None, reserve: float) -> str | None:
    """With examples: the training examples among the job's rows are answered by their gold labels (banked:
    they never reach the teacher); the teacher answers the held-out examples, its accuracy on them is
    measured and sets the target (unless ``target`` is given) and whether its labels train the students.
    Its answers on held-out examples among the job's rows cost what the large model alone pays for those
    rows; on the others they are spent from the allowance, and start only where it could still pay for
    ``reserve`` (embedding the rows) after them. A reason to stop, or None."""
    assert run.allowance is not None
    run.allowance.bank(sum(1 for i in run.gold_train if i < run.n))
    inside = [i for i in run.gold_hold if i < run.n]
    outside = [i for i in run.gold_hold if i >= run.n]
    try:
        what = f"the teacher's answers on {len(outside)} held-out examples that are not rows of the job"
        forecast = len(outside) * run.cpu_per_label
        if outside and not run.allowance.fits(forecast + reserve, what + ", then embedding the rows"):
            raise _Refused(run.allowance.refused[-1])
        with run.spend(forecast, what):
            run.teacher_gold = dict(zip(outside, await run.ask(outside), strict=True))
        run.teacher_gold.update(zip(inside, await run.ask(inside), strict=True))  # the baseline pays these
    except _Refused as why:
        run.against_gold = target is not None
        if target is None:
            return (
                f"too short to measure the teacher on the examples ({why}); the teacher answers every other row. "
                "Give --target to certify the students against the examples without measuring the teacher, or "
                "label rows of the input itself (--label-column): the teacher's answers on those cost no more "
                "than the large model alone pays for them"
            )
        run.report["teacher_not_measured"] = str(why)
        return None
    accuracy = _accuracy(run, run.teacher_gold.values(), list(run.teacher_gold))
    goal = min(MAX_TARGET, max(0.01, accuracy)) if target is None else target
    run.teacher_teaches = accuracy >= WEAK
    # a weak teacher's agreement is worth nothing; a strong one's is worth more than too few held-out examples
    run.against_gold = (
        target is not None or not run.teacher_teaches or len(run.gold_hold) >= 2 * min_points(goal, run.delta)
    )
    if run.against_gold:
        run.target = goal
    return None


def _accuracy(run: _Run, answers: Any, rows: Sequence[int]) -> float:
    return sum(a == run.gold[i] for a, i in zip(answers, rows, strict=True)) / max(1, len(rows))


def _on_gold(run: _Run, record: dict[str, Any], answers: Sequence[str], rows: Sequence[int]) -> None:
    """With examples: a stage's accuracy on the held-out examples that reach it, and the teacher's on the same."""
    if not run.gold or not all(i in run.gold for i in rows):
        return
    asked = [i for i in rows if i in run.teacher_gold]
    record["gold"] = {"rows": len(rows), "accuracy": _accuracy(run, answers, rows)}
    if len(asked) == len(rows):
        record["gold"]["teacher_accuracy"] = _accuracy(run, [run.teacher_gold[i] for i in rows], rows)


def _examples_record(run: _Run, examples: Examples, target: float | None) -> dict[str, Any]:
    """What the examples did (``optimize.examples``): the teacher's accuracy on them, whether it is weak (under
    ``WEAK``, or under a stage's accuracy on the same rows), and how many more examples to ask for."""
    from compound.optimize.examples import examples_needed

    measured = len(run.teacher_gold)
    accuracy = _accuracy(run, run.teacher_gold.values(), list(run.teacher_gold)) if measured else None
    record: dict[str, Any] = {
        "source": examples.source,
        "examples": len(examples.rows),
        "training": len(run.gold_train),
        "held_out": len(run.gold_hold),
        "among_the_rows": sum(1 for i in run.gold if i < run.n),
        "teacher_accuracy": accuracy,
        "teacher_standard_error": standard_error(accuracy, measured) if accuracy is not None else None,
        "target_from": "--target" if target is not None else "the teacher's accuracy on the held-out examples",
        "against_gold": run.against_gold,
        "teacher_labels_train": run.teacher_teaches,
        "repeats": repeats(len(run.gold_train), len(run.train) if run.teacher_teaches else 0),
    }
    beaten = {
        name: s["gold"]
        for name, s in run.report["stages"].items()
        if "teacher_accuracy" in s.get("gold", {}) and s["gold"]["accuracy"] > s["gold"]["teacher_accuracy"]
    }
    reasons = []
    if accuracy is not None and accuracy < WEAK:
        reasons.append(f"its accuracy on the {measured} held-out examples is {accuracy:.3f}, under {WEAK}")
    for name, g in beaten.items():
        reasons.append(f"the {name} is right on {g['accuracy']:.3f} of the {g['rows']} held-out examples that "
                       f"reach it, the teacher on {g['teacher_accuracy']:.3f}")  # fmt: skip
    record["weak"] = reasons
    if reasons:
        ask = max(2 * len(examples.rows), 4 * examples_needed(run.target, run.delta))
        record["ask"] = (
            f"the teacher is weak: {'; '.join(reasons)}. Give more examples (about {ask}, from rows like the "
            "job's): they measure the teacher better and let the students, certified against them, answer more "
            "rows"
        )
    return record


def _forecast(run: _Run, costs: Costs) -> Forecast:
    """What this plan comes to for the job: the stages' measured costs and shares."""
    stages = []
    for name, rec in run.report["stages"].items():
        share = sum(1 for _, s in run.decided.values() if s == name) / run.n
        one_time = rec.get("training", {}).get("cpu_s", 0.0)
        stages.append(StagePlan(name, one_time, float(rec.get("cpu_s_per_row") or 0.0), share))
    return Forecast(run.n, costs, tuple(stages), run.slack)


#: shares of rows the stages answer, assumed only by the forecast printed before a run (the planner itself
#: decides on figures measured on the job); the summary then compares that forecast with what was spent
PRIOR_SHARES = {"embedding student": 0.45, "fine-tuned encoder": 0.25}
#: the share of rows the teacher labels, assumed by the same forecast
PRIOR_LABELS = 0.12


async def forecast_before(
    texts: Sequence[str],
    teacher: LLMStage,
    *,
    probe: int = 8,
    slack: float = SLACK,
    examples: Examples | None = None,
    seed: int = 0,
) -> tuple[Forecast, dict[str, Any]]:
    """The forecast a user sees before a run: the teacher labels ``probe`` rows of the first round the run
    will label (the same seeded draw: with the response cache on, the run does not pay for them again) and
    a first chunk of rows is embedded, both measured; the stages' shares are ``PRIOR_SHARES``. A job whose
    measured allowance cannot pay for embedding its rows is forecast as the teacher alone. With ``examples``,
    the teacher's answers on the held-out ones that are not rows of the job are a one-time cost."""
    uniq = list(dict.fromkeys(texts))
    run = _Run(list(uniq), teacher, TARGET, 0.1, slack, seed)
    if examples is not None:
        run.add_examples(examples)
    order = run.unlabelled()
    run.rng.shuffle(order)
    with track_usage("auto: forecast probe") as used:
        await run.label(order[: min(probe, run.n)], [])
        run.allowance = Allowance(run.n, run.cpu_per_label, slack)
        head = min(64, run.n)
        with local_work() as spent:
            embed_texts(uniq[:head])
            if CHAR_NGRAMS:
                char_ngrams(uniq[:head])
    calls = max(1, len(run.labels))
    usd = used.total.cost_usd / calls if used.total.cost_usd else None
    embed = spent[1] / head
    costs = Costs(teacher=run.cpu_per_label, embed=embed, embed_load=0.0, fit_load=PRIORS.fit_load)
    stages: tuple[StagePlan, ...] = ()
    measure = sum(1 for i in run.gold_hold if i >= run.n) * run.cpu_per_label
    if run.allowance.fits(measure + len(run.texts) * embed + PRIORS.fit_load, "embedding the rows"):
        labels = PRIOR_LABELS * run.n
        encoder = labels / 2 * 3 * PRIORS.encoder_train  # half the labels train it, 3 epochs
        if measure:
            stages = (StagePlan("teacher on the held-out examples", measure, 0.0, 0.0),)
        stages += (StagePlan("embedding student", PRIORS.fit_load, embed, PRIOR_SHARES["embedding student"]),)
        if pays(run.n * PRIOR_SHARES["fine-tuned encoder"] * run.cpu_per_label, encoder):
            stages += (
                StagePlan("fine-tuned encoder", encoder, PRIORS.encoder_infer, PRIOR_SHARES["fine-tuned encoder"]),
            )
    forecast = Forecast(run.n, costs, stages, slack)
    probe_record = {"rows": run.n, "probe_rows": calls, "probe_cpu_s": used.total.cpu_s, "usd_per_row": usd}
    return forecast, {**probe_record, "forecast": forecast.to_dict()}


def labelled_step(step: Predict, field: str) -> LLMStage:
    """The teacher as a stage: one label per row."""
    return LLMStage(step, field, "teacher")


def classify_teacher(labels: Sequence[str], field: str, model: Any = None, instruction: str | None = None) -> LLMStage:
    """The teacher of a classification job: ``optimize.labels.label_step`` on ``model`` (default: the large
    model of the settings), as a stage."""
    from compound.core.settings import get_settings
    from compound.optimize.labels import label_step

    return labelled_step(label_step(labels, model or get_settings().large, field, instruction), field)


async def plan_classify(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    field: str = "label",
    model: Any = None,
    instruction: str | None = None,
    target: float | None = None,
    delta: float = 0.1,
    seed: int = 0,
    examples: Any = None,
) -> tuple[Decided, dict[str, Any]]:
    """``auto`` for a classification job, as every caller runs it (``classify(..., program="auto")``,
    ``compound compare``'s ``auto``, the peers benchmark): ``plan_and_answer`` with ``classify_teacher``,
    the LoRA student tried on long jobs, and ``examples`` (the user's gold rows) where given."""
    from compound.optimize.auto_lora import LoraStudent

    teacher = classify_teacher(labels, field, model, instruction)
    return await plan_and_answer(
        texts, teacher, target=target, delta=delta, lora=LoraStudent(), seed=seed, examples=examples
    )


def decisions(report: dict[str, Any]) -> dict[str, Any]:
    """The planner's decisions from its report, in short: the plan, each stage tried (trained or not, why
    not, certified, rows it answered), and every stage's share of the job's rows (the teacher's labels and
    its answers at job time apart)."""
    stages = {}
    for name, record in report["stages"].items():
        trained = "skipped" not in record and ("threshold" in record or "training" in record)
        stages[name] = {
            "trained": trained,
            "certified": bool(record.get("certified")),
            "answers": record.get("answers", 0),
            **({"skipped": record["skipped"]} if "skipped" in record else {}),
        }
    rows = max(1, report["rows"])
    return {
        "plan": report["plan"],
        "rows": report["rows"],
        "teacher_labelled": report["teacher_labelled"],
        "stages": stages,
        "share_by_stage": {k: v / rows for k, v in report["rows_by_stage"].items()},
        "target": report["target"],
        "delta": report["delta"],
    }


def summary_line(report: dict[str, Any], job: dict[str, Any]) -> str:
    """One line for a finished job: the plan, each stage's share, one-time + job CPU against the large
    model alone (measured CPU per label x rows), the forecast made before the escalations ran, and with
    examples the teacher's accuracy on them (and, where it is weak, that it is and a request for more)."""
    one = report["one_time"]["cpu_s"]
    total = one + job["cpu_s"]
    shares = ", ".join(f"{k} {v}" for k, v in report["rows_by_stage"].items() if v)
    allowance = report.get("allowance")
    ex = report.get("examples")
    if ex is None or not ex["against_gold"]:
        guarantee = f"a stage's answers agree with the teacher's at target {report['target']:.3f} or better"
    else:
        guarantee = (
            f"a stage's answers are right (against the gold of {ex['held_out']} held-out examples) at target "
            f"{report['target']:.3f} or better, for rows like the examples"
        )
    line = (
        f"auto: {report['plan']}; rows by stage: {shares}; guarantee: {guarantee}, delta {report['delta']}; "
        f"CPU s one-time {one:.1f} + job {job['cpu_s']:.1f} = {total:.1f}"
    )
    if allowance:
        large = allowance["rows"] * allowance["teacher_cpu_per_row"]
        line += f" ({total / max(large, 1e-9):.2f}x the large model alone, {large:.1f}; bound {1 + allowance['slack']:.2f}x)"
    expected = report.get("expected_job_cpu_s")
    if expected is not None:
        line += f"; forecast for the job {expected:.1f} CPU s, actual {job['cpu_s']:.1f}"
    if ex is None:
        return line + "; the teacher's own accuracy was not measured (--examples FILE with labelled rows measures it)"
    return line + "; " + examples_summary(report)


def examples_summary(report: dict[str, Any]) -> str:
    """The examples' part of the summary: where they came from, the teacher's accuracy on them, each stage's."""
    ex = report["examples"]
    text = (
        f"examples: {ex['examples']} from {ex['source']} ({ex['training']} train the students, {ex['held_out']} "
        f"held out; {ex['among_the_rows']} are rows of the job, answered with their gold labels)"
    )
    if ex["teacher_accuracy"] is None:
        text += "; the teacher's accuracy on them was not measured"
    else:
        text += (
            f"; the teacher's accuracy on the held-out examples: {ex['teacher_accuracy']:.3f} "
            f"(+-{ex['teacher_standard_error']:.3f}; target from {ex['target_from']})"
        )
    if ex["teacher_accuracy"] is not None and not ex["against_gold"]:
        text += (
            f"; the stages are certified against the teacher's labels: {ex['held_out']} held-out examples are too "
            "few to certify a student at the teacher's accuracy"
        )
    for name, stage in report["stages"].items():
        if "gold" in stage:
            text += f"; {name}: {stage['gold']['accuracy']:.3f} on the {stage['gold']['rows']} that reach it"
    if not ex["teacher_labels_train"]:
        text += "; the teacher's labels did not train the students (too weak: the examples alone did)"
    return text + (f". {ex['ask']}" if ex.get("ask") else "")
