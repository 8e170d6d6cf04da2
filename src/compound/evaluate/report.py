"""Pareto fronts, tables and plots (PNG and a self-contained HTML page) of quality against cost."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (quality, cost) points, True where no other point is at least as good on both and better on one."""
    out = []
    for i, (q, c) in enumerate(points):
        dominated = any((q2 >= q and c2 <= c) and (q2 > q or c2 < c) for j, (q2, c2) in enumerate(points) if j != i)
        out.append(not dominated)
    return out


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
