"""What teaching buys: per data set and configuration, accuracy, per-row CPU, one-time CPU, break-even rows.

    python examples/datasets.py sarcasm --out data/sarcasm.jsonl      # and crows-pairs, sms-spam
    python benchmarks/teach.py --data data/sarcasm.jsonl data/crows-pairs.jsonl data/sms_spam.jsonl \\
        --json teach.json

Each data set runs ``compound compare``'s configurations (default: small, small-knn, large, auto) on
``--limit`` rows, learning only on ``--calibration`` other rows (``auto``, the staged planner, learns from
the large model's labels of the evaluated rows, its job). One-time CPU (labelling, training, demo search,
calibration) is kept apart from per-row CPU; break-even rows is how many rows a configuration must
process before its one-time cost is paid back by its per-row saving over the large model;
``dominated_by`` names a configuration that costs no more (one-time CPU amortised over the rows) and
scores no less, strictly better on one (``compound compare``'s test). Replies are
cached across runs and cached replies count at the cost of the call they stand for, so a re-run reports
the same figures without recomputing them.
"""

from __future__ import annotations

from pathlib import Path

from _common import parse, parser, report

from compound.core.concurrency import run_sync
from compound.evaluate.compare import compare, load_labelled


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="JSON Lines files with text and label")
    p.add_argument("--configs", default="small,small-knn,large,auto")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--calibration", type=int, default=200)
    args = parse(p, configs="small,small-knn", limit=6, calibration=6)
    rows, certificates = [], {}
    for path in args.data:
        df = load_labelled(path, "text", "label")
        result = run_sync(
            compare(df, "text", "label", args.configs.split(","), limit=args.limit, calibration=args.calibration)
        )
        large = next((r for r in result["rows"] if r["config"] == "large"), None)
        auto = result.get("details", {}).get("auto")
        if auto:  # the planner's decisions: which stages it trained, and who answered the rows
            shares = ", ".join(f"{stage} {share:.2f}" for stage, share in auto["share_by_stage"].items() if share)
            certificates[f"{path.stem}: auto's plan"] = (
                f"{auto['plan']}; share of rows by stage: {shares}; target {auto['target']}, delta {auto['delta']}"
            )
        for r in result["rows"]:
            rows.append(
                {
                    "data": path.stem,
                    "config": r["config"],
                    "accuracy": r["accuracy"],
                    "cpu_s_per_row": r["cpu_s_per_row"],
                    "x_large_per_row": r["cpu_s_per_row"] / large["cpu_s_per_row"] if large else float("nan"),
                    "one_time_cpu_s": r["one_time_cpu_s"],
                    "break_even_rows": r["break_even_rows"],
                    "amortised_cpu_s_per_row": r["amortised_cpu_s_per_row"],
                    "dominated_by": r["dominated_by"] or "",
                }
            )
    report(
        "teach: accuracy and CPU per configuration",
        rows,
        {"limit": args.limit, "calibration": args.calibration, **certificates},
        args.json,
    )


if __name__ == "__main__":
    main()
