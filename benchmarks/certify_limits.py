"""Where ``auto`` cannot save, and why: the limits of its certificate, measured on labelled data.

    # a job the large model already labelled (its output CSV), with gold labels for the same rows:
    python benchmarks/certify_limits.py job --teacher data/sms_auto2.csv --gold data/sms_job_gold.csv \\
        --input text --label label --teacher-cpu-per-row 1.265 --json job.json
    # a labelled data set, split as ``compound compare`` splits it (--limit, --calibration, --seed):
    python benchmarks/certify_limits.py compare --data data/rotten-tomatoes.jsonl --json compare.json

``job``: for each target agreement and each of ``--draws`` random samples of ``--labels`` rows, it runs
auto's own student and certificate (``EmbeddingClassifier.cross_fit`` on the sample's teacher labels,
``learn_threshold`` at delta 0.1, starting at a quarter of the sample as ``auto`` does), answers every
other row with the student where it is certified and with the teacher's label where not, and reports
the share it answered, the job's accuracy against gold, its agreement with the teacher, and its total CPU (labels and escalations at the teacher's measured CPU per row,
every row embedded at the CPU measured here) against the large model alone. ``noise floor`` is the
student's agreement with the teacher over all the other rows (no certificate): the most a certificate
could ever show; ``labels needed`` is how many labelled rows a Clopper-Pearson bound at that agreement
needs to reach the target (0 when it never can).

``compare``: the student learned on the calibration rows' gold labels answers the evaluated rows; for
shares of the rows (its most confident first) it reports the student's accuracy there and the best
accuracy ``auto`` could reach at that share if the large model were right on every row it escalated.
``auto`` is certified against the large model's own accuracy: where the student is not clearly better
than that on the share that would pay, no sample of a few hundred rows can show it.

No model is called: the teacher's labels come from the file, so the figures repeat exactly.
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import parse, parser, report

from compound.evaluate.compare import load_labelled, split
from compound.optimize.auto import START
from compound.optimize.students.embedding import EmbeddingClassifier, PrecomputedEmbeddings
from compound.program.rows import render_row
from compound.routing.calibrate import learn_threshold, lower_bound
from compound.tables.io import read_table

DELTA = 0.1


def embed(texts: list[str]) -> tuple[Any, float]:
    """The embeddings of ``texts`` with auto's embedder, and the CPU seconds per row they took."""
    c0 = time.process_time()
    x = EmbeddingClassifier().features(texts)  # measured by embed_texts' own local_work too
    return x, (time.process_time() - c0) / len(texts)


def labels_needed(agreement: float, target: float) -> int:
    """The fewest labelled rows whose Clopper-Pearson bound at this observed agreement reaches the target."""
    if agreement <= target:
        return 0
    n = 10
    while lower_bound(round(agreement * n), n, DELTA) < target:
        n = int(n * 1.1) + 1
        if n > 1_000_000:
            return 0
    return n


def job(args: Any) -> None:
    teacher_df, gold_df = read_table(args.teacher), read_table(args.gold)
    if len(teacher_df) != len(gold_df) or list(teacher_df[args.input]) != list(gold_df[args.input]):
        raise SystemExit("--teacher and --gold must hold the same rows in the same order")
    teacher = [str(v) for v in teacher_df[args.label].fillna("")]
    gold = [str(v) for v in gold_df[args.label]]
    texts = [render_row(r, [args.input]) for _, r in gold_df.iterrows()]
    vectors, embed_cpu = embed(texts)
    n, t_cpu = len(texts), args.teacher_cpu_per_row
    rows, floors = [], []
    for target in args.targets:
        draws = []
        for seed in range(args.draws):
            order = list(range(n))
            random.Random(seed).shuffle(order)
            sample, rest = order[: args.labels], order[args.labels :]
            student = PrecomputedEmbeddings(vectors)
            oof = student.cross_fit(sample, [teacher[i] for i in sample])
            agrees = [a == teacher[i] for (a, _), i in zip(oof, sample, strict=True)]
            threshold = learn_threshold([c for _, c in oof], agrees, target, DELTA, start=START)
            out = {i: teacher[i] for i in sample}
            answers = student.predict(rest)
            for i, (label, confidence) in zip(rest, answers, strict=True):
                out[i] = label if confidence >= threshold.value else teacher[i]
            escalated = sum(c < threshold.value for _, c in answers)
            floors.append(sum(a == teacher[i] for i, (a, _) in zip(rest, answers, strict=True)) / len(rest))
            draws.append(
                {
                    "answered_by_student": 1 - escalated / len(rest),
                    "accuracy": sum(out[i] == gold[i] for i in range(n)) / n,
                    "agreement": sum(out[i] == teacher[i] for i in range(n)) / n,
                    "x_large": ((args.labels + escalated) * t_cpu + n * embed_cpu) / (n * t_cpu),
                }
            )
        mean = {k: statistics.mean(d[k] for d in draws) for k in draws[0]}
        rows.append(
            {
                "target": target,
                "student answers": mean["answered_by_student"],
                "accuracy": mean["accuracy"],
                "agreement w/ teacher": mean["agreement"],
                "total CPU x large": mean["x_large"],
                "worst x large": max(d["x_large"] for d in draws),
            }
        )
    floor = statistics.mean(floors)
    summary = {
        "rows": n,
        "labelled rows per draw": args.labels,
        "draws": args.draws,
        "large model's accuracy": sum(t == g for t, g in zip(teacher, gold, strict=True)) / n,
        "majority label's accuracy": max(gold.count(v) for v in set(gold)) / n,
        "embedding CPU s per row": embed_cpu,
        "noise floor (student's agreement with the teacher, all rows)": floor,
        **{f"labels needed to certify {t} at the noise floor": labels_needed(floor, t) for t in args.targets},
    }
    report("auto's certificate on a job the large model labelled", rows, summary, args.json)


def compare(args: Any) -> None:
    df = load_labelled(args.data, args.input, args.label)
    rows = []
    for seed in range(args.seeds):
        parts = split(df, args.limit, args.calibration, seed)
        calib = [render_row(r, [args.input]) for _, r in parts.calibrate.iterrows()]
        evaluate = [render_row(r, [args.input]) for _, r in parts.evaluate.iterrows()]
        student = EmbeddingClassifier()
        student.cross_fit(calib, [str(v) for v in parts.calibrate[args.label]])
        answers = student.predict(evaluate)
        gold = [str(v) for v in parts.evaluate[args.label]]
        ranked = np.argsort([-c for _, c in answers], kind="stable")
        right = np.array([answers[i][0] == gold[i] for i in ranked])
        for share in args.shares:
            m = round(share * len(gold))
            rows.append(
                {
                    "seed": seed,
                    "student's share": share,
                    "student accuracy there": float(right[:m].mean()),
                    "auto at best (teacher always right)": float((right[:m].sum() + len(gold) - m) / len(gold)),
                }
            )
    summary = {"data": str(args.data), "evaluated rows": args.limit, "calibration rows": args.calibration}
    report("the student on compare's split: accuracy by share answered", rows, summary, args.json)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    j = sub.add_parser("job")
    j.add_argument("--teacher", required=True, help="the job's output: every row labelled by the large model")
    j.add_argument("--gold", required=True, help="the same rows with gold labels")
    j.add_argument("--teacher-cpu-per-row", type=float, required=True, help="the large model's measured CPU s per row")
    j.add_argument("--labels", type=int, default=200, help="rows the teacher labels for auto")
    j.add_argument("--targets", type=float, nargs="+", default=[0.95, 0.9])
    j.add_argument("--draws", type=int, default=10)
    c = sub.add_parser("compare")
    c.add_argument("--data", required=True)
    c.add_argument("--limit", type=int, default=200)
    c.add_argument("--calibration", type=int, default=200)
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.7, 0.85, 0.9, 1.0])
    for sp in (j, c):
        sp.add_argument("--input", default="text")
        sp.add_argument("--label", default="label")
        sp.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parse(p, labels=20, draws=1, targets=[0.9], limit=20, calibration=20, seeds=1, shares=[0.5, 1.0])
    job(args) if args.what == "job" else compare(args)


if __name__ == "__main__":
    main()
