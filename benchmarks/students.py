"""auto's two local students side by side on a labelled file: the frozen embedding with a logistic
regression, and the encoder fine-tuned end to end (``optimize.students.encoder``). Gold labels stand in
for the teacher's: this measures the students' strength and CPU, not ``auto``.

    python examples/datasets.py rotten-tomatoes --out data/rotten-tomatoes.jsonl
    nice -n 10 python benchmarks/students.py --data data/rotten-tomatoes.jsonl --train 240 --test 400 --json s.json
    python benchmarks/students.py --smoke        # CI: synthetic sentences, seconds

Per student: accuracy on the test rows, accuracy on its most confident 50/70/85% of them (what a
certificate could keep), training CPU (one-time) and CPU per row answered.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from _common import parser, report

from compound.core.usage import track_usage
from compound.optimize.students.embedding import EmbeddingClassifier
from compound.optimize.students.encoder import EncoderClassifier, EncoderSettings

SHARES = (0.5, 0.7, 0.85)


def smoke_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = {"pos": ["loved", "wonderful", "clever", "moving"], "neg": ["hated", "tedious", "silly", "dreary"]}
    return [(f"the critic found it {rng.choice(words[y])}", y) for y in (rng.choice(["pos", "neg"]) for _ in range(n))]


def scored(name: str, answers: list[tuple[str, float]], gold: list[str], train_cpu: float, cpu_row: float) -> dict:
    ranked = sorted(zip(answers, gold, strict=True), key=lambda p: -p[0][1])
    row: dict[str, Any] = {"student": name, "accuracy": sum(a == g for (a, _), g in ranked) / len(gold)}
    for share in SHARES:
        top = ranked[: max(1, int(share * len(gold)))]
        row[f"acc_top_{int(share * 100)}"] = sum(a == g for (a, _), g in top) / len(top)
    return {**row, "train_cpu_s": train_cpu, "cpu_s_per_row": cpu_row}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="JSON Lines with text and label")
    p.add_argument("--train", type=int, default=240)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.smoke:
        train, test = smoke_rows(24, 0), smoke_rows(20, 1)
    else:
        from compound.evaluate.compare import load_labelled

        df = load_labelled(args.data, "text", "label").sample(frac=1.0, random_state=args.seed)
        pairs = [(f"text: {t}", str(y)) for t, y in zip(df["text"], df["label"], strict=True)]
        train, test = pairs[: args.train], pairs[args.train : args.train + args.test]
    texts, labels = [t for t, _ in train], [y for _, y in train]
    probe, gold = [t for t, _ in test], [y for _, y in test]
    rows = []
    with track_usage() as fit:
        frozen = EmbeddingClassifier(embedder="all-minilm-l6-v2")
        frozen.fit(texts, labels)
    with track_usage() as used:
        answers = frozen.predict(probe)
    rows.append(scored("frozen MiniLM + logistic", answers, gold, fit.total.cpu_s, used.total.cpu_s / len(probe)))
    tuned = EncoderClassifier("all-minilm-l6-v2", EncoderSettings(epochs=args.epochs, seed=args.seed))
    record = tuned.fit(texts, labels)
    with track_usage() as used:
        answers = tuned.predict(probe)
    rows.append(scored("fine-tuned MiniLM", answers, gold, record["cpu_s"], used.total.cpu_s / len(probe)))
    summary = {"data": str(args.data) if not args.smoke else "smoke", "train": len(train), "test": len(test)}
    report("auto's students on gold labels: accuracy, by confidence, and CPU", rows, summary, args.json)


if __name__ == "__main__":
    main()
