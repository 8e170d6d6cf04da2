"""``auto`` at job scale: total CPU (everything counted) and accuracy on gold, the large model alone against
``auto``, for jobs of several lengths on several labelled data sets, and each stage's share of rows.

    python examples/datasets.py rotten-tomatoes --out data/rotten-tomatoes.jsonl
    nice -n 10 python benchmarks/auto_scale.py --data data/rotten-tomatoes.jsonl --sizes 200 2000 \\
        --json auto_scale.json --plot auto_scale.png
    python benchmarks/auto_scale.py --smoke --json smoke.json     # CI: scripted teacher, tiny rows, seconds

For each data set, one seeded shuffle; the job of N rows is its first N rows (so the jobs are nested, and
the response cache computes each teacher label once across sizes). Per job:
- **large alone**: the large model labels the first ``--large-sample`` rows (all of them on shorter jobs) with
  the very step ``auto``'s teacher uses; its CPU per row and accuracy there are extrapolated to N rows
  (stated in the table: ``large_measured_rows``).
- **auto**: ``classify(..., program="auto")`` then the job (``optimize.staged``): the one-time usage
  (labels, embeddings, training, predictions) plus the job's usage. No gold is given to ``auto``.
``--plans N`` runs ``auto`` N times per job with plan seeds 0..N-1 (the rows it labels and holds out differ;
the data and the large model's figures do not) and reports the spread of its CPU ratio and points.
``points`` compares the two on the same rows (those the large model was measured on); ``auto_acc`` is
``auto``'s accuracy on all N rows. Run it in a fresh ``COMPOUND_HOME``: cached replies count at the CPU they
cost when computed, so a cache filled on a loaded machine would inflate both sides.
CPU is physical plus cached: a cached reply counts at the CPU it cost when it was computed, so re-runs
and nested jobs report what each job would cost alone. ``forecast_err`` compares the job's forecast
(made before the escalated rows ran) with what they cost.

``--smoke``: three synthetic data sets (two, four and three labels), a scripted teacher that burns
``--teacher-cpu`` CPU s per call and is wrong on 3% of rows, hashed bag-of-words embeddings in place of
MiniLM and no fine-tuned encoder (no torch): it checks the plumbing and the guarantee, not the students.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from _common import parser, report

from compound.optimize.labels import label_step
from compound.tables.jobs import process_table
from compound.tables.operators import classify

WORDS = {
    "binary": {"positive": ["great", "lovely", "superb", "moving"], "negative": ["awful", "dull", "poor", "tedious"]},
    "topic": {
        "sport": ["match", "goal", "league", "coach"],
        "business": ["market", "shares", "profit", "bank"],
        "science": ["cells", "physics", "lab", "genome"],
        "politics": ["vote", "senate", "minister", "election"],
    },
    "three-class": {
        "agree": ["yes", "indeed", "right"],
        "disagree": ["no", "wrong", "never"],
        "neutral": ["maybe", "perhaps", "unclear"],
    },  # fmt: skip
}


def synthetic(kind: str, n: int, seed: int) -> Any:
    import pandas as pd

    rng = random.Random(seed)
    labels = list(WORDS[kind])
    rows = []
    for i in range(n):
        label = rng.choice(labels)
        filler = rng.choice(["the", "a", "this", "one"])
        rows.append({"text": f"{filler} {rng.choice(WORDS[kind][label])} item {i}", "label": label})
    return pd.DataFrame(rows)


def scripted_teacher(kinds: dict[str, list[str]], cpu_s: float) -> Any:
    """Labels by keyword, wrong on 3% of rows (chosen by a hash of the row), burning ``cpu_s`` per call."""
    import hashlib

    from compound import ScriptedBackend

    def reply(request: Any) -> str:
        c0 = time.process_time()
        while time.process_time() - c0 < cpu_s:
            pass
        text = request.messages[-1].content
        found = [label for label, words in kinds.items() if any(f" {w} " in f" {text} " for w in words)]
        labels = sorted(kinds)
        label = found[0] if found else labels[0]
        if int(hashlib.sha256(text.encode()).hexdigest(), 16) % 33 == 0:
            label = labels[(labels.index(label) + 1) % len(labels)]
        return json.dumps({"label": label})

    return ScriptedBackend(reply, model="scripted-teacher")


def hashed_embeddings(texts: Any, model_path: Any = None) -> Any:
    import numpy as np

    out = np.zeros((len(texts), 128), dtype="float32")
    for i, t in enumerate(texts):
        for w in str(t).split():
            if not w.isdigit():
                out[i, sum(map(ord, w)) % 128] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def cpu(usage: Any) -> float:
    return usage.physical.cpu_s + usage.cached.cpu_s


def large_alone(df: Any, labels: list[str], model: Any, sample: int) -> dict[str, Any]:
    part = df.head(sample)
    step = label_step(labels, model, "label", instruction(labels))
    op = classify(part[["text"]], "label", labels, input_columns=["text"], program=step)
    result = process_table(op, part[["text"]])
    return {
        "rows": len(part),
        "cpu_s_per_row": cpu(result.usage) / len(part),
        "accuracy": accuracy(result.df["label"], part["label"]),
    }


def accuracy(got: Any, gold: Any) -> float:
    return float((got.astype(str).to_numpy() == gold.astype(str).to_numpy()).mean())


def instruction(labels: list[str]) -> str:
    return f"Classify the row: choose the label from: {', '.join(labels)}."  # classify's, for the cache


def auto(df: Any, labels: list[str], model: Any, target: float | None, paired: int, seed: int) -> dict[str, Any]:
    op = classify(
        df[["text"]], "label", labels, input_columns=["text"], model=model, program="auto", target=target, seed=seed
    )
    one_time = op.setup["one_time"]["cpu_s"]
    result = process_table(op, df[["text"]])
    job = cpu(result.usage)
    setup = op.setup
    expected = setup.get("expected_job_cpu_s")
    return {
        "total_cpu_s": one_time + job,
        "one_time_cpu_s": one_time,
        "job_cpu_s": job,
        "accuracy": accuracy(result.df["label"], df["label"]),
        # on the rows the large model alone was measured on: the paired comparison
        "accuracy_paired": accuracy(result.df["label"].head(paired), df["label"].head(paired)),
        "shares": {k: v / max(1, setup["rows"]) for k, v in setup["rows_by_stage"].items()},
        "forecast_err": (job - expected) / expected if expected else None,
        "plan": setup["plan"],
        "setup": setup,
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for data in sorted({r["data"] for r in rows}):
        sizes = sorted({r["rows"] for r in rows if r["data"] == data})
        means = [
            sum(r["x_large"] for r in mine) / len(mine)
            for mine in ([r for r in rows if (r["data"], r["rows"]) == (data, n)] for n in sizes)
        ]
        ax.plot(sizes, means, marker="o", label=data)  # the mean over plan seeds
    ax.axhline(1.05, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("job rows")
    ax.set_ylabel("auto total CPU / large model alone")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="*", default=[], help="JSON Lines files with text and label")
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 10000])
    p.add_argument("--large-sample", type=int, default=500, help="rows the large model labels to measure it")
    p.add_argument(
        "--target", type=float, default=None, help="auto's agreement target (default: classify's; smoke 0.9)"
    )
    p.add_argument("--seed", type=int, default=0, help="the data's shuffle")
    p.add_argument(
        "--plans", type=int, default=1, help="auto runs per job, with plan seeds 0..N-1 (how much a plan varies)"
    )
    p.add_argument("--teacher-cpu", type=float, default=0.02, help="--smoke: CPU s per scripted call")
    p.add_argument("--plot", type=Path, help="write the plot of CPU ratio by job length here")
    p.add_argument("--poll", type=int, help="llama.cpp's polling level (0: no spinning; default llama.cpp's 50)")
    args = p.parse_args()
    if args.poll is not None:  # spinning threads count CPU seconds on a loaded machine
        import compound

        compound.configure(poll=args.poll)
    sets: list[tuple[str, Any, Any]] = []
    if args.smoke:
        import compound.optimize.staged as staged
        from compound.optimize.planner import Costs

        staged.embed_texts = hashed_embeddings  # type: ignore[attr-defined]  # the smoke's stated stand-in
        staged.PRIORS = Costs(teacher=0.0, embed=1e-4, embed_load=0.01, fit_load=0.3)  # what the stand-in costs
        import sklearn.cluster  # noqa: F401  # imported before any job: a real job pays this once too
        import sklearn.feature_extraction.text  # noqa: F401
        import sklearn.linear_model  # noqa: F401

        sizes = [min(s, 400) for s in args.sizes[:2]] if args.sizes != [200, 2000, 10000] else [100, 400]
        args.target = args.target or 0.9
        for kind in WORDS:
            sets.append((kind, synthetic(kind, max(sizes), args.seed), scripted_teacher(WORDS[kind], args.teacher_cpu)))
    else:
        from compound.core.settings import get_settings
        from compound.evaluate.compare import load_labelled

        sizes = args.sizes
        for path in args.data:
            df = load_labelled(path, "text", "label").sample(frac=1.0, random_state=args.seed).reset_index(drop=True)
            sets.append((path.stem, df.head(max(sizes)), get_settings().large))
    rows, details = [], {}
    for name, df, model in sets:
        labels = sorted(df["label"].astype(str).unique())
        for n in sizes:
            job = df.head(n).reset_index(drop=True)
            large = large_alone(job, labels, model, args.large_sample)
            large_total = large["cpu_s_per_row"] * len(job)
            for plan_seed in range(args.plans):
                got = auto(job, labels, model, args.target, large["rows"], plan_seed)
                key = f"{name}/{n}" + (f"/plan{plan_seed}" if args.plans > 1 else "")
                details[key] = {"plan": got["plan"], **got.pop("setup")}
                rows.append(row(name, job, large, large_total, got, plan_seed))
    if args.plot:
        plot(rows, args.plot)
    summary: dict[str, Any] = {
        "smoke": args.smoke,
        "sizes": sizes,
        "large_sample": args.large_sample,
        "seed": args.seed,
        "plans": args.plans,
        "poll": args.poll,
    }
    if args.plans > 1:
        summary["spread"] = spread(rows)
    report("auto at job scale: total CPU and accuracy, large model alone vs auto", rows, summary, args.json)
    if args.json:
        saved = json.loads(args.json.read_text())
        args.json.write_text(json.dumps({**saved, "details": details}, indent=2, default=str))


def row(name: str, job: Any, large: dict[str, Any], large_total: float, got: dict[str, Any], plan: int) -> dict:
    return {
        "data": name,
        "rows": len(job),
        "plan_seed": plan,
        "large_cpu_s": large_total,
        "large_measured_rows": large["rows"],
        "large_acc": large["accuracy"],
        "auto_cpu_s": got["total_cpu_s"],
        "auto_one_time": got["one_time_cpu_s"],
        "x_large": got["total_cpu_s"] / large_total,
        "auto_acc": got["accuracy"],
        "auto_acc_paired": got["accuracy_paired"],
        "points": 100 * (got["accuracy_paired"] - large["accuracy"]),
        "shares": ", ".join(f"{k} {v:.2f}" for k, v in got["shares"].items() if v),
        "forecast_err": got["forecast_err"],
    }


def spread(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per job, over its plan seeds: the mean, lowest and highest CPU ratio and points."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys((r["data"], r["rows"]) for r in rows):
        mine = [r for r in rows if (r["data"], r["rows"]) == key]
        out[f"{key[0]}/{key[1]}"] = {
            k: {
                "mean": sum(r[k] for r in mine) / len(mine),
                "min": min(r[k] for r in mine),
                "max": max(r[k] for r in mine),
            }
            for k in ("x_large", "points")
        }
    return out


if __name__ == "__main__":
    main()
