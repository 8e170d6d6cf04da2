"""Pure parts of the peers benchmark: scoring, compound/peer ratios, the goals, and the generated README.

Nothing here runs a model; ``tests/unit/benchmarks/test_peers_report.py`` tests it. A task's record (in the
runner's JSON) holds its configurations (one per side and setting, with costs measured in one run) and
the pairs to compare; ``ratios`` turns each pair into compound/peer ratios of accuracy, CPU and wall
seconds, and ``goals`` checks them against the issue's goals.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: tasks on which compound's CPU must be at most half the peer's (at equal or better quality)
HALF_CPU_TASKS = ("optimize", "cascade")


def accuracy(predictions: list[str | None], gold: list[str]) -> float:
    return sum(p == g for p, g in zip(predictions, gold, strict=True)) / len(gold) if gold else math.nan


def total(config: dict[str, Any], key: str) -> float:
    """A cost over the one-time and the per-row sections (the setup of the tool apart)."""
    return sum(config.get(s, {}).get(key, 0.0) for s in ("one_time_cost", "rows_cost"))


def ratio(ours: float, theirs: float) -> float | None:
    if theirs == 0:
        return None if ours == 0 else math.inf
    return ours / theirs


def ratios(task: dict[str, Any]) -> list[dict[str, Any]]:
    """compound/peer for each pair of the task: accuracy (or the task's quality key), CPU s and wall s."""
    by_name = {(c["peer"], c["config"]): c for c in task["configs"]}
    quality = task.get("quality", "accuracy")
    out = []
    for ours_key, theirs_key in task["pairs"]:
        ours, theirs = by_name[tuple(ours_key)], by_name[tuple(theirs_key)]
        row = {"compound": ours_key[1], "peer": f"{theirs_key[0]} {theirs_key[1]}"}
        if quality is not None:
            row[quality] = ratio(ours[quality], theirs[quality])
        row["cpu_s"] = ratio(total(ours, "cpu_s"), total(theirs, "cpu_s"))
        row["wall_s"] = ratio(total(ours, "wall_s"), total(theirs, "wall_s"))
        row["goals"] = goals(task["name"], ours.get(quality), theirs.get(quality), row["cpu_s"])
        out.append(row)
    return out


def goals(task: str, ours_q: float | None, theirs_q: float | None, cpu_ratio: float | None) -> dict[str, bool]:
    """The issue's goals for one pair: quality at least the peer's, CPU at most the peer's (half on the
    cascade and optimizer tasks, which also needs the quality goal)."""
    out: dict[str, bool] = {}
    if ours_q is not None and theirs_q is not None:
        out["quality >= peer"] = ours_q >= theirs_q
    if cpu_ratio is not None:
        out["cpu <= peer"] = cpu_ratio <= 1.0
        if task in HALF_CPU_TASKS:
            out["cpu <= 0.5x peer at >= quality"] = cpu_ratio <= 0.5 and out.get("quality >= peer", True)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return lines


EXTRA_COLUMNS = ("rows_to_large", "large_calls", "rows_per_s", "answered")  # where a task has them
CONFIG_COLUMNS = [
    "peer",
    "config",
    "accuracy",
    "unparsed",
    "agreement_with_large",
    "calls",
    "tokens",
    "cpu_s",
    "wall_s",
]


def config_rows(task: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in task["configs"]:
        row = {k: c.get(k) for k in CONFIG_COLUMNS}
        if "accuracy" in c and "predictions" in c:  # no answer: a reply the side could not parse (wrong)
            row["unparsed"] = sum(p is None for p in c["predictions"])
        for key in ("calls", "tokens", "cpu_s", "wall_s"):
            row[key] = total(c, key)
        row["one_time_cpu_s"] = c.get("one_time_cost", {}).get("cpu_s")
        row["server_cpu_s"] = sum(
            s["cpu_s"] for part in ("one_time_cost", "rows_cost") for s in c.get(part, {}).get("servers", {}).values()
        )
        for key in EXTRA_COLUMNS:
            if key in c:
                row[key] = c[key]
        rows.append(row)
    return rows


def why_missed(task: dict[str, Any], pair_rows: list[dict[str, Any]]) -> list[str]:
    """For each goal missed on this task: why (the task's own explanation, and the noise of few rows)."""
    missed = sorted({k for r in pair_rows for k, v in r["goals"].items() if not v})
    lines = []
    for goal in missed:
        why = task.get("why", {}).get(goal, "")
        if goal == "quality >= peer":
            why = f"{why} On {task['rows']} rows one row is {100 / task['rows']:.0f} points of accuracy.".strip()
        lines.append(f"- Missed, {goal}: {why or 'see the figures above.'}")
    return [*lines, ""] if lines else []


def render_readme(result: dict[str, Any]) -> str:
    """benchmarks/peers/README.md from the runner's JSON: every figure comes from ``result``."""
    lines = [
        "# compound beside DSPy and LOTUS",
        "",
        "Generated by `python benchmarks/peers/run.py` from its JSON "
        f"(`{result['json_path']}`); do not edit by hand. Measured by: "
        + "; ".join(f"`{c}`" for c in result["commands"])
        + ".",
        "",
        result["intro"],
        "",
    ]
    for task in result["tasks"]:
        base = task.get("majority")
        base_text = (
            f" Always answering {base['label']!r} would score {base['share']:.3g} on these rows." if base else ""
        )
        lines += [
            f"## {task['title']}",
            "",
            f"{task['about']} Rows: {task['rows']}, measured by `{task['command']}`.{base_text}",
            "",
        ]
        rows = config_rows(task)
        columns = [
            c
            for c in [*CONFIG_COLUMNS, "one_time_cpu_s", "server_cpu_s", *EXTRA_COLUMNS]
            if any(r.get(c) is not None for r in rows)
        ]
        lines += table(rows, columns) + [""]
        if task["pairs"]:
            pair_rows = ratios(task)
            quality = task.get("quality", "accuracy")
            for r in pair_rows:
                r["goals met"] = ", ".join(k for k, v in r["goals"].items() if v) or "-"
                r["goals missed"] = ", ".join(k for k, v in r["goals"].items() if not v) or "-"
            cols = ["compound", "peer", *([quality] if quality else []), "cpu_s", "wall_s", "goals met", "goals missed"]
            lines += ["compound/peer ratios (CPU and wall: one-time plus per-row):", ""]
            lines += table(pair_rows, cols) + [""]
            lines += why_missed(task, pair_rows)
        stats = [
            f"- {c['peer']} {c['config']}, its own statistics: "
            + ", ".join(f"`{k}` {json.dumps(v)}" for k, v in c["stats"].items())
            for c in task["configs"]
            if c.get("stats")
        ]
        if task.get("notes") or stats:
            lines += [*(f"- {n}" for n in task.get("notes", [])), *stats, ""]
    lines += ["## Settings", "", *(f"- {s}" for s in result["settings"]), ""]
    return "\n".join(lines)
