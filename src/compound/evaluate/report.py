"""Pareto fronts, tables and plots (PNG and a self-contained HTML page) of quality against cost."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _comparable(points: Sequence[tuple[float | None, float | None]]) -> dict[int, tuple[float, float]]:
    """The points whose quality and cost are both known (not None, not NaN), by index."""
    return {
        i: (q, c)
        for i, (q, c) in enumerate(points)
        if q is not None and c is not None and not math.isnan(q) and not math.isnan(c)
    }


def dominated_by(points: Sequence[tuple[float | None, float | None]]) -> list[int | None]:
    """For (quality, cost) points, the index of a point that dominates each one, or None where none does.

    ``j`` dominates ``i`` when it scores no less, costs no more, and is strictly better on one of the two:
    two points equal on both dominate neither; at equal cost, the higher score dominates. Where several
    dominate a point, the one named is the best of them (highest quality, then lowest cost, then first).
    A point with a missing quality or cost (None or NaN) can be compared with nothing: it is neither
    dominated nor dominates another."""
    known = _comparable(points)
    out: list[int | None] = []
    for i in range(len(points)):
        if i not in known:
            out.append(None)
            continue
        q, c = known[i]
        better = [j for j, (q2, c2) in known.items() if j != i and q2 >= q and c2 <= c and (q2 > q or c2 < c)]
        out.append(min(better, key=lambda j: (-known[j][0], known[j][1], j)) if better else None)
    return out


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[bool]:
    """For (quality, cost) points, True where no other point is at least as good on both and better on one
    (``dominated_by``); a point with a missing quality or cost is not on the front (it cannot be compared)."""
    known = _comparable(points)
    return [d is None and i in known for i, d in enumerate(dominated_by(points))]


def mark_dominated(rows: list[dict[str, Any]], quality: str, cost: str, label: str = "config") -> None:
    """Mark each row of a comparison: ``dominated_by``, the ``label`` of the best row that dominates it by
    ``quality`` (higher is better) and ``cost`` (lower is better), or None (``dominated_by``); ``pareto``,
    whether it is on the front. A row whose quality or cost is missing (absent, None or NaN) is neither."""
    points = [(r.get(quality), r.get(cost)) for r in rows]
    for row, by, front in zip(rows, dominated_by(points), pareto_front(points), strict=True):
        row["dominated_by"] = None if by is None else rows[by][label]
        row["pareto"] = front


def plot_quality_vs_cost(
    rows: list[dict[str, Any]], quality: str, cost: str, label: str, path: Path, title: str, log_x: bool = False
) -> Path:
    """Scatter with each configuration labelled and the Pareto front joined; writes ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    xs, ys = [r[cost] for r in rows], [r[quality] for r in rows]
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r[cost])
    ax.scatter(xs, ys, color="#4a6fa5", zorder=3, label="configuration")
    if front:
        ax.plot(
            [r[cost] for r in front],
            [r[quality] for r in front],
            color="#d1495b",
            lw=1.5,
            marker="o",
            zorder=4,
            label="Pareto front",
        )
    ax.legend(loc="best")
    ax.margins(x=0.12, y=0.12)
    for r in rows:
        ax.annotate(str(r[label]), (r[cost], r[quality]), textcoords="offset points", xytext=(5, 5), fontsize=9)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(cost.replace("_", " "))
    ax.set_ylabel(quality.replace("_", " "))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def html_report(title: str, rows: list[dict[str, Any]], png: Path, path: Path, notes: Sequence[str] = ()) -> Path:
    """One HTML file: the table, the plot embedded, and notes. Opens anywhere, no network needed."""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(f'{r[c]:.4g}' if isinstance(r[c], float) else str(r[c]))}</td>" for c in cols)
        + "</tr>"
        for r in rows
    )
    img = base64.b64encode(png.read_bytes()).decode()
    note_html = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}</style>"
        f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>"
        f"<p><img alt='quality against cost' src='data:image/png;base64,{img}'></p>{note_html}"
    )
    path.write_text(page)
    return path


def text_table(rows: list[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()))
    return t
