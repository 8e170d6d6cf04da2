"""A student's report files: its record as JSON, and a PNG of the training loss curve beside the
cumulative CPU of teacher and student over rows (one-time cost included, break-even marked); and the
progress bar of its long steps (labelling, training).

Quality and per-row costs on unseen rows, and the break-even row count, come from ``compound compare``
(``student:DIR`` configuration), the one mechanism for comparing configurations.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
    return path


class Bar:
    """Progress with done/total and the ETA, and the latest loss when given one: a rich bar on a terminal;
    in a log (not a terminal), a plain line at every tenth of the way. Disabled, every method does nothing,
    so callers need no branches."""

    def __init__(self, enabled: bool, title: str, total: int, done: int = 0, loss: float | None = None) -> None:
        self.bar: Any = None
        self.log: Any = None
        if not enabled:
            return
        from rich.console import Console

        self.title, self.total, self.done, self.fields = title, max(1, total), done, {"loss": loss}
        console = Console(soft_wrap=True)
        if not console.is_terminal:
            self.log, self.start, self.first = console, time.monotonic(), done
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn(title), BarColumn(), MofNCompleteColumn()]
        if loss is not None:
            columns.append(TextColumn("loss {task.fields[loss]:.4f}"))
        self.bar = Progress(*columns, TextColumn("ETA"), TimeRemainingColumn())
        self.task = self.bar.add_task(title, total=total, completed=done, loss=loss)
        self.bar.start()

    def update(self, done: int | None = None, **fields: Any) -> None:
        """Set the count (``done``) or, without one, advance it by one; ``fields``: the loss, say."""
        if self.bar is not None:
            if done is None:
                self.bar.advance(self.task)
            self.bar.update(self.task, **({"completed": done} if done is not None else {}), **fields)
        elif self.log is not None:
            before, self.done = self.done, self.done + 1 if done is None else done
            self.fields.update(fields)
            if self.done * 10 // self.total > before * 10 // self.total:
                self._line()

    def _line(self) -> None:
        rate = (self.done - self.first) / max(1e-9, time.monotonic() - self.start)
        eta = f"{(self.total - self.done) / rate:.0f} s" if rate > 0 else "?"
        loss = self.fields.get("loss")
        extra = f", loss {loss:.4f}" if isinstance(loss, float) and not math.isnan(loss) else ""
        self.log.print(f"{self.title}: {self.done}/{self.total}{extra}, ETA {eta}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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
