"""The main job: one task on a real table, done three ways, with everything it costs counted.

The task: the Palmer penguins table (shipped in the ``palmerpenguins`` package) with the ``sex`` of
``rows`` complete penguins hidden; fill those cells with the ``impute`` table operator. The three ways:

- **small**: the small model (135M) alone, with complete rows of the table as its examples;
- **large**: the large model (1.5B) alone, the same prompt;
- **compound**: ``impute(..., program="auto")``: the table's complete rows are labelled data, so a
  logistic regression on the other columns learns from them, is certified on them (out of fold, with a
  Clopper-Pearson guarantee), fills the cells it is sure of, and sends only the rest to the large model,
  with a short prompt (no example rows: it sees only the few cells the student leaves).

Each way runs under its own trace run; its CPU seconds and joules include everything it did (the compound
row's one-time training and embedding too). Cached replies count at the cost of the call they stand for,
so a second run reports the same figures, and its notes say how many calls came from the cache.
``--json F`` writes the same table.
"""

from __future__ import annotations

import importlib.resources
import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from compound.core.errors import ConfigurationError
from compound.store.traces import start_run
from compound.tables.jobs import process_table
from compound.tables.operators import impute

FEATURES = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def load_penguins() -> Any:
    import pandas as pd

    try:
        text = importlib.resources.files("palmerpenguins").joinpath("data/penguins.csv").read_text()
    except ModuleNotFoundError:
        raise SystemExit(
            "the demo reads the penguins table from the palmerpenguins package: pip install palmerpenguins"
        ) from None
    return pd.read_csv(io.StringIO(text))


def _way(name: str, table: Any, held_out: Any, truth: Any, **op_args: Any) -> dict[str, Any]:
    with start_run(f"demo {name}", rows=len(held_out)) as r:
        op = impute(table, "sex", input_columns=FEATURES, **op_args)
        filled = process_table(op, table, progress=True).df
    correct = int((filled.loc[held_out, "sex"] == truth).sum())
    u = r.usage.total
    row = {
        "way": name,
        "accuracy": correct / len(held_out),
        "correct": correct,
        "rows": len(held_out),
        "cpu_s": u.cpu_s,
        "joules": u.energy_j,
        "calls": u.calls,
        "calls_from_cache": r.usage.cached.calls,
        "local_steps": u.local,  # in-process work (the student's), not model calls
        "run_id": r.id,
    }
    if op.setup:
        row["answered_by"] = dict(getattr(op.program, "answered_by", {}))
        row["one_time_cpu_s"] = op.setup["one_time"]["cpu_s"]
    return row


def run_demo(
    rows: int = 24,
    console: Console | None = None,
    seed: int = 0,
    json_out: Path | None = None,
    large: str | None = None,
) -> dict[str, Any]:
    """``large``: the large model (default: the ``large`` setting); the small one is the ``small`` setting."""
    from compound.core.settings import get_settings

    settings = get_settings()
    large = large or settings.large
    console = console or Console()
    table = load_penguins().dropna(subset=FEATURES + ["sex"]).reset_index(drop=True)
    if rows > len(table) - 6:  # impute learns from the rows left complete
        raise ConfigurationError(
            f"--rows {rows} is too many: the table has {len(table)} complete rows; give at most {len(table) - 6}"
        )
    held_out = table.sample(n=rows, random_state=seed).index
    truth = table.loc[held_out, "sex"].copy()
    table.loc[held_out, "sex"] = None
    console.print(
        f"[bold]compound demo[/]: impute the hidden sex of {rows} of {len(table)} penguins, three ways "
        f"({len(table) - rows} complete rows are the examples)"
    )
    ways = [
        _way("small", table, held_out, truth, model=settings.small),
        _way("large", table, held_out, truth, model=large),
        _way("compound", table, held_out, truth, model=large, program="auto"),
    ]
    reference = ways[1]
    out = Table("way", "accuracy", "CPU s", "joules (est.)", "model calls", "vs large CPU", "notes")
    for w in ways:
        notes = []
        if "answered_by" in w:  # none when the job's row cache gave every row (a second run)
            who = f"answered by {w['answered_by']}" if sum(w["answered_by"].values()) else "rows from the row cache"
            notes.append(f"one-time {w['one_time_cpu_s']:.1f} CPU s included; {who}")
        if w["calls_from_cache"]:
            notes.append(f"{w['calls_from_cache']} of {w['calls']} calls answered from an earlier run's cache")
        out.add_row(
            w["way"],
            f"{w['accuracy']:.2f} ({w['correct']}/{w['rows']})",
            f"{w['cpu_s']:.1f}",
            f"{w['joules']:.0f}",
            str(w["calls"]),
            f"{w['cpu_s'] / reference['cpu_s']:.0%}" if reference["cpu_s"] else "",
            "; ".join(notes),
        )
    console.print(out)
    majority = truth.value_counts().iloc[0] / rows
    console.print(f"majority-class baseline {majority:.2f}; see a run with  compound traces show RUN_ID")
    result = {"task": "impute penguins sex", "rows": rows, "majority_baseline": majority, "ways": ways}
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2, default=float))
        console.print(f"wrote {json_out}")
    return result
