"""Distilled LoRA students against their teacher, per data set, on rows neither the student nor its filter saw.

    python benchmarks/distill.py --dataset sms=data/sms_spam.jsonl:spam,not\\ spam \\
        --dataset sarcasm=data/sarcasm.jsonl:sarcastic,not\\ sarcastic --rows 500 --limit 200 --json out.json

Each ``--dataset NAME=FILE:LABELS`` is a JSON Lines file with ``text`` and ``label``. A student is made
with ``compound distill`` into ``--work/NAME`` unless one is there already (a killed run resumes), from
the teacher's labels only; then ``compound compare`` scores ``small``, the student and the teacher
(``large``) on ``--limit`` rows of the data without every row whose text the student was made from
(``NAME/unseen.jsonl``; compare refuses any row the student saw). Per-row costs are CPU seconds measured in that one compare run; the one-time cost
(labelling, filtering, training) comes from the student's record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import parse, parser, report, student_vs_teacher


def distill(name: str, path: Path, labels: str, args, folder: Path) -> None:
    if (folder / "student.json").exists():
        return
    cmd = [sys.executable, "-m", "compound.cli", "distill", "--data", str(path), "--input", "text"]
    cmd += ["--labels", labels, "--teacher", args.teacher, "--student", args.student, "--rows", str(args.rows)]
    cmd += ["--samples", str(args.samples), "--out", str(folder), "--epochs", str(args.epochs), "--lr", str(args.lr)]
    cmd += ["--threads", str(args.threads)] + (["--max-steps", str(args.max_steps)] if args.max_steps else [])
    subprocess.run(cmd, check=True)


def unseen(path: Path, folder: Path) -> tuple[Path, int]:
    """The data without every row whose text the student was made from (a data set may repeat a text: the
    SMS collection does), so no evaluated row was seen by the student or its filter; and how many were cut."""
    import pandas as pd

    from compound.optimize.distill.pipeline import input_digest
    from compound.program.rows import render_row

    seen = set(json.loads((folder / "student.json").read_text())["input_digests"])
    df = pd.read_json(path, lines=True)
    keep = [input_digest({"row": render_row(r, ["text"])}) not in seen for _, r in df.iterrows()]
    out = folder / "unseen.jsonl"
    df[keep].to_json(out, orient="records", lines=True, force_ascii=False)
    return out, len(df) - sum(keep)


def compare(path: Path, labels: str, args, folder: Path) -> dict:
    out = folder / "compare.json"
    cmd = [sys.executable, "-m", "compound.cli", "compare", "--data", str(path), "--input", "text"]
    cmd += ["--label", "label", "--labels", labels, "--configs", f"small,student:{folder},large"]
    cmd += ["--limit", str(args.limit), "--large", args.teacher, "--small", args.student, "--json", str(out)]
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--dataset", action="append", required=True, help="NAME=FILE:LABELS (comma-separated labels)")
    p.add_argument("--work", type=Path, default=Path("data/distill"))
    p.add_argument("--teacher", default="qwen2.5-coder-1.5b")
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--samples", type=int, default=3)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of the LoRA fine-tune")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--threads", type=int, default=2, help="torch threads for training")
    p.add_argument("--max-steps", type=int, help="stop training after this many optimizer steps")
    args = parse(p, teacher="smollm2-135m", rows=4, samples=1, epochs=1.0, limit=2, max_steps=1)
    rows = []
    for spec in args.dataset:
        name, _, rest = spec.partition("=")
        path, _, labels = rest.partition(":")
        folder = args.work / name
        distill(name, Path(path), labels, args, folder)
        evaluate, cut = unseen(Path(path), folder)
        result = compare(evaluate, labels, args, folder)
        by = {r["config"].split(":")[0]: r for r in result["rows"]}
        record = json.loads((folder / "student.json").read_text())
        student, teacher, small = by["student"], by["large"], by["small"]
        rows.append(
            {
                "dataset": name,
                "rows_evaluated": result["evaluated"],
                "rows_cut_as_seen": cut,
                "training_rows": record["data"]["rows"],
                "kept": record["data"]["kept"],
                **student_vs_teacher("accuracy", small, student, teacher, record),
                "break_even_rows": student["break_even_rows"],
            }
        )
    report("distilled students vs teacher (unseen rows)", rows, {"teacher": args.teacher}, args.json)


if __name__ == "__main__":
    main()
