"""Progress on long work, one mechanism for every long loop: table jobs, teacher labelling, training.

Guarantees:
- on a terminal, a rich bar: the title, done/total, the rate, the caller's figures (a loss, cost and
  energy so far) and the ETA;
- in a log (stderr is not a terminal: nohup, CI, a pipe), a plain line at every tenth of the way with
  the same figures, so a long job run in the background says where it is; none in between;
- always on stderr: stdout stays the command's own output (a table written to ``-``, JSON);
- disabled, every method does nothing, so callers need no branches.
"""

from __future__ import annotations

import math
import time
from typing import Any


class Progress:
    """``Progress(enabled, "labelling", total)``; ``update()`` after each item (or ``update(done=n)``,
    ``update(advance=k)``), with the figures to show as keywords; ``stop()`` at the end.

    ``formats`` names the figures and how each is written, e.g. ``{"loss": "loss {:.4f}"}``; a figure not
    given yet, or NaN, is left out. ``unit`` names what is counted, for the rate ("rows" -> "3.2 rows/s")."""

    def __init__(
        self,
        enabled: bool,
        title: str,
        total: int,
        done: int = 0,
        *,
        unit: str = "",
        formats: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        self.bar: Any = None
        self.log: Any = None
        if not enabled:
            return
        from rich.console import Console

        self.title, self.total, self.done, self.unit = title, max(1, total), done, unit
        self.formats, self.fields = formats or {}, dict(fields)
        self.start, self.first = time.monotonic(), done
        console = Console(stderr=True, soft_wrap=True)
        if not console.is_terminal:
            self.log = console
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn(f"[bold]{title}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[figures]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.bar.add_task(title, total=total, completed=done, figures=self._figures())
        self.bar.start()

    def _rate(self) -> float:
        """Items per second since this run started (a resumed start does not count)."""
        elapsed = time.monotonic() - self.start
        return (self.done - self.first) / elapsed if elapsed > 0 else 0.0

    def _figures(self) -> str:
        parts = []
        rate = self._rate()
        if self.unit and rate > 0:
            parts.append(f"{rate:.1f} {self.unit}/s")
        for name, fmt in self.formats.items():
            value = self.fields.get(name)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                parts.append(fmt.format(value))
        return "  ".join(parts)

    def update(self, done: int | None = None, advance: int = 1, **fields: Any) -> None:
        """Set the count to ``done``, or advance it by ``advance``; ``fields``: the figures now."""
        if self.bar is None and self.log is None:
            return
        before = self.done
        self.done = done if done is not None else self.done + advance
        self.fields.update(fields)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, figures=self._figures())
        elif self.done * 10 // self.total > before * 10 // self.total:
            self._line()

    def _line(self) -> None:
        rate = self._rate()
        eta = f"ETA {(self.total - self.done) / rate:.0f} s" if rate > 0 else "ETA ?"
        figures = self._figures()
        self.log.print(f"{self.title}: {self.done}/{self.total}" + (f", {figures}" if figures else "") + f", {eta}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


__all__ = ["Progress"]
