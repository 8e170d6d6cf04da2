"""A student's report files: its record as JSON, and a PNG of the training loss curve beside the
cumulative CPU of teacher and student over rows (one-time cost included, break-even marked).

Quality and per-row costs on unseen rows, and the break-even row count, come from ``compound compare``
(``student:DIR`` configuration), the one mechanism for comparing configurations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
    return path


def plot(losses: list[float], path: Path, costs: dict[str, Any] | None = None) -> Path:
    """The training loss curve and, given a summary, cumulative CPU of teacher vs student over rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if costs else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    ax.plot(range(1, len(losses) + 1), losses, lw=1, alpha=0.5, label="step loss")
    window = max(1, len(losses) // 20)
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    ax.plot(range(1, len(losses) + 1), smooth, lw=2, label=f"mean of {window}")
    ax.set(xlabel="optimizer step", ylabel="loss (reply tokens)", title="student training loss")
    ax.legend()
    if costs:
        ax = axes[0][1]
        n_max = max(1000, 2 * (costs.get("break_even_rows") or 500))
        xs = [0, n_max]
        ax.plot(xs, [0, costs["teacher_cpu_per_row"] * n_max], label="teacher")
        ax.plot(
            xs,
            [costs["one_time_cpu_s"], costs["one_time_cpu_s"] + costs["student_cpu_per_row"] * n_max],
            label="student (incl. one-time)",
        )
        if costs.get("break_even_rows"):
            ax.axvline(costs["break_even_rows"], ls="--", c="gray", label=f"break-even {costs['break_even_rows']} rows")
        ax.set(xlabel="rows processed", ylabel="CPU seconds", title="cumulative cost")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
