"""The returns curve: quality against compute as the number of samples doubles.

Self-consistency runs at N = 1, 2, 4, 8, 16 on a sample of the user's rows. For each N it reports
accuracy and cost, the gain over the previous N (one doubling), and the gain per extra CPU-second. The
recommended N maximises ``accuracy - min_gain_per_cpu_s * cpu_s``: every extra CPU-second must buy at
least ``min_gain_per_cpu_s`` accuracy, judged over the whole curve (a doubling that gains nothing does
not hide a later one that gains enough). Samples are cached by index, so the whole curve costs about as
much as its largest N, while each N's cost is reported as if it ran alone. As Chen et al. (2024)
found, accuracy can rise and then fall as calls grow, so the curve is measured, not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compound.evaluate.compare import classifier, score
from compound.strategies.sampling import SelfConsistency


async def returns_curve(
    df: Any,
    input_col: str,
    label_col: str,
    labels: list[str],
    model: Any,
    ns: Sequence[int] = (1, 2, 4, 8, 16),
    min_gain_per_cpu_s: float = 0.001,
    progress: bool = False,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for n in ns:
        program = classifier(labels, model, SelfConsistency(n) if n > 1 else None, name=f"vote{n}")
        acc, u = await score(program, df, input_col, label_col, labels, progress)
        row = {
            "n": n,
            "accuracy": acc,
            "calls": u.calls,
            "cpu_s": u.cpu_s,
            "joules": u.energy_j,
            "usd": u.cost_usd,
            "gain_vs_previous": None,
            "gain_per_cpu_s": None,
        }
        if rows:
            prev = rows[-1]
            row["gain_vs_previous"] = acc - prev["accuracy"]
            extra = u.cpu_s - prev["cpu_s"]
            row["gain_per_cpu_s"] = row["gain_vs_previous"] / extra if extra > 0 else None
        rows.append(row)
    for row in rows:
        row["utility"] = row["accuracy"] - min_gain_per_cpu_s * row["cpu_s"]
    recommended = max(rows, key=lambda r: (r["utility"], -r["n"]))["n"]
    best = max(rows, key=lambda r: (r["accuracy"], -r["cpu_s"]))
    return {
        "rows": rows,
        "recommended_n": recommended,
        "best_accuracy_n": best["n"],
        "min_gain_per_cpu_s": min_gain_per_cpu_s,
    }
