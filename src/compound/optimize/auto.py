"""``auto``: teach a cheap student from the large model on the job's own rows, certify it, escalate the rest.

The recipe for classification-style work (``compare``'s ``auto``, ``classify ... --auto``,
``program="auto"``):

1. **Label a sample.** The teacher (the large model) labels a random sample of the job's own rows, in
   rounds (``first`` rows, then doubling), never more than ``label_budget`` rows in all.
   Gold labels the user already has (``gold``: labelled rows, or a table's complete rows) are used too.
2. **Train the cheapest student**: a sentence embedding + logistic regression (``optimize.students.embedding``;
   all-mpnet-base-v2 where installed, else MiniLM), a few percent of a 1.5B model call per row. It is
   cross-fitted in 4 folds, so every labelled row both trains it and, out of fold, tests it; the fold
   models, averaged, are what answers the job's rows, so the certificate is about the deployed student
   (``optimize.students.linear``).
3. **Certify it**: its confidence threshold is learned with the Clopper-Pearson fixed-sequence test of
   ``routing.calibrate``: with probability at least ``1 - delta``, the answers it keeps agree with the
   reference at ``target`` or better. The first threshold tested accepts a quarter of the labelled rows
   (``START``). The reference is the teacher's label (no gold), or the gold label,
   in which case the target is the teacher's own accuracy on the gold rows it labelled, at most
   ``max_target`` (so the kept answers are as good as the teacher's, with the stated confidence; a
   near-perfect teacher would otherwise set a target no few hundred rows could ever show). Without gold,
   rounds stop once the student keeps ``enough`` of the labelled rows, or the label budget is spent. With
   gold, the teacher labels every gold row (at most ``label_budget``, by default 200: the estimate's
   standard error is then 2 to 3 points) in one round, and the target is
   set once: an estimate from a first round of a few dozen rows is off by several points either way
   (``benchmarks/README.md`` has the measurement), and stopping at the first round whose estimate
   happened to be low would bias it down.
4. **Escalate** every row below the threshold to the teacher. Rows the teacher already labelled keep
   that label without a second call, cache or no cache (the cascade's ``known`` answers).

The one-time cost (labelling, embedding, training) is returned in the report and counted by the caller
in the job's total; nothing is hidden.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from compound.core.errors import ConfigurationError
from compound.core.settings import get_settings
from compound.core.usage import track_usage
from compound.optimize.auto_lora import LoraStudent
from compound.optimize.labels import label_step
from compound.optimize.students.stage import ProxyStage
from compound.program.predict import Predict
from compound.routing.calibrate import learn_threshold
from compound.routing.cascade import Cascade, LLMStage

#: the share of labelled rows the first threshold tested accepts (``routing.calibrate.learn_threshold``): a
#: student certified for fewer saves little, and starting there one unlucky disagreement among the few most
#: confident rows no longer ends the search (``benchmarks/certify_limits.py`` measures both starts)
START = 0.25

#: gold rows the teacher labels by default to measure its own accuracy (the target when gold is given)
GOLD_LABELS = 200


async def teach(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    field: str = "label",
    teacher: Any = None,
    instruction: str | None = None,
    student: ProxyStage | None = None,
    teacher_step: Predict | None = None,
    gold: Sequence[tuple[str, str]] = (),
    target: float | None = None,
    delta: float = 0.1,
    label_budget: int | None = None,
    first: int = 48,
    enough: float = 0.9,
    max_target: float = 0.97,
    seed: int = 0,
    lora: LoraStudent | None = None,
) -> tuple[Cascade, dict[str, Any]]:
    """Learn an ``auto`` cascade (student, then teacher) for classifying ``texts``; see the module doc.

    ``student`` defaults to the embedding proxy (``ProxyStage``; give one holding a ``TabularClassifier``
    for table rows); ``teacher_step`` defaults to a short classification step on ``teacher``. ``lora``
    lets ``auto`` add a distilled LoRA student as a middle stage when the job is long enough to pay for
    it (``optimize.auto_lora``; its decision is in the report's ``lora``)."""
    labels = list(labels)
    if len(labels) < 2:
        raise ConfigurationError("auto needs at least two labels")
    teacher = teacher or get_settings().large
    teacher_step = teacher_step or label_step(labels, teacher, field, instruction)
    student = student or ProxyStage("proxy")
    cascade = Cascade([student, LLMStage(teacher_step, field, "teacher")], field, name="auto")
    gold = [(t, str(g)) for t, g in gold if str(g) in labels]
    default_budget = min(len(gold), GOLD_LABELS) if gold else max(first, len(texts) // 10)
    budget_rows = label_budget if label_budget is not None else default_budget
    order = list(range(len(texts) if not gold else len(gold)))
    random.Random(seed).shuffle(order)
    report: dict[str, Any] = {"rounds": [], "gold_rows": len(gold)}
    labelled: dict[int, str] = {}  # row (of texts, or of gold) -> teacher label
    teacher_cpu, oof, agrees = 0.0, [], []
    with track_usage("auto: one-time") as one_time:
        size = budget_rows if gold else min(first, budget_rows)  # gold: one round, one target
        while True:
            todo = [i for i in order if i not in labelled][: max(0, size - len(labelled))]
            if gold and target is not None:
                todo = []  # gold labels and a given target: the teacher need not label anything
            pool = [gold[i][0] for i in todo] if gold else [texts[i] for i in todo]
            with track_usage("auto: teacher labels") as teacher_usage:
                answers = await cascade.stages[-1].answer(pool) if pool else []
            teacher_cpu += teacher_usage.total.cpu_s
            for i, (label, _) in zip(todo, answers, strict=True):
                labelled[i] = label
            if gold:  # reference: gold; target: the teacher's accuracy on what it labelled
                ref_texts, ref = [t for t, _ in gold], [g for _, g in gold]
                hits = sum(labelled[i] == gold[i][1] for i in labelled)
                goal = target if target is not None else min(max_target, max(0.01, hits / max(1, len(labelled))))
            else:  # reference: the teacher's labels; target: agreement with it
                keys = sorted(labelled)
                ref_texts, ref = [texts[i] for i in keys], [labelled[i] for i in keys]
                goal = target if target is not None else 0.95
            step: dict[str, Any] = {"labelled": len(labelled), "target": goal}
            if len(set(ref)) >= 2:
                oof = student.cross_fit(ref_texts, ref)
                agrees = [a == r for (a, _), r in zip(oof, ref, strict=True)]
                threshold = learn_threshold([c for _, c in oof], agrees, goal, delta, start=START)
                cascade.thresholds = [threshold]
                step.update(threshold=threshold.to_dict(), kept=threshold.accepted / len(ref))
            report["rounds"].append(step)
            done = step.get("kept", 0.0) >= enough
            if done or len(labelled) >= min(budget_rows, len(order)) or gold:
                break
            size = min(budget_rows, 2 * len(labelled))
        if lora is not None and oof:
            kept = report["rounds"][-1].get("kept", 0.0)
            report["lora"] = await lora.add_to(
                cascade,
                ref_texts,
                ref,
                oof,
                target=goal,
                delta=delta,
                rows_to_teacher=(len(texts) - (0 if gold else len(labelled))) * (1 - kept),
                teacher_cpu_per_row=teacher_cpu / max(1, len(labelled)),
                seed=seed,
            )
    report.update(
        one_time=one_time.total.to_dict(),
        threshold=cascade.thresholds[0].to_dict(),
        certified=cascade.thresholds[0].accepted > 0,
        teacher_labelled=len(labelled),
        # out of fold, on every labelled row: the most a certificate for all of them could show
        student_agreement=sum(agrees) / len(agrees) if agrees else None,
    )
    if not gold:  # the teacher's labels of the job's own rows: never asked for again
        cascade.known = {texts[i]: label for i, label in labelled.items()}
    return cascade, report


def summary_line(report: dict[str, Any], job: dict[str, Any], df: Any = None) -> str:
    """One line for a finished auto job: one-time cost, the job's own, and their sum (everything counted)."""
    if "rows_by_stage" in report:  # a planned job (optimize.staged)
        from compound.optimize.staged import summary_line as planned

        return planned(report, job)
    one = report["one_time"]
    total = one["cpu_s"] + job["cpu_s"]
    t = report["threshold"]
    lora = report.get("lora")
    if lora is None:
        second = ""
    elif lora["picked"]:
        second = f"LoRA student trained ({lora['reason']}), certified: {lora['certified']}; "
    else:
        second = f"no LoRA student ({lora['reason']}); "
    return (
        f"auto: teacher labelled {report['teacher_labelled']} rows (+{report['gold_rows']} gold); student certified: "
        f"{report['certified']} (threshold {t['value']}, target {t['target']:.3f}, delta {t['delta']}); {second}"
        f"CPU s one-time {one['cpu_s']:.1f} + job {job['cpu_s']:.1f} = total {total:.1f}{why_not(report)}"
    )


def why_not(report: dict[str, Any]) -> str:
    """For a student certified for nothing: whether more labels could help, or only a lower target."""
    agreement, target = report.get("student_agreement"), report["threshold"]["target"]
    if report["certified"] or agreement is None:
        return ""
    if agreement < target:
        return (
            f". The student agrees with the reference on {agreement:.3f} of the labelled rows (out of fold), "
            f"under the target {target:.3f}: no number of labels would certify it for all rows; a lower --target "
            f"(a weaker guarantee) lets it answer the rows it is surest of"
        )
    return (
        f". The student agrees with the reference on {agreement:.3f} of the labelled rows (out of fold), above the "
        f"target {target:.3f}, but too few rows show it with confidence 1 - delta: a longer job labels more"
    )
