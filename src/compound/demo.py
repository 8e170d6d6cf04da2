"""The main job: a compound table job over a real table, on the embedded models.

It takes the Palmer penguins table (shipped in the ``palmerpenguins`` package), hides the ``sex`` of a
few complete rows, and fills those cells with the ``impute`` table operator: a typed, grammar-constrained
step that sees complete rows of the table as examples. It prints each answer next to the truth, the
accuracy against the majority-class baseline, and a usage report (physical apart from cached).
"""

from __future__ import annotations

import importlib.resources
import io
from typing import Any

from rich.console import Console
from rich.table import Table

from compound.core.errors import ConfigurationError
from compound.store.traces import start_run
from compound.tables.jobs import process_table
from compound.tables.operators import impute_op

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


def run_demo(rows: int = 12, model: str | None = None, console: Console | None = None, seed: int = 0) -> dict:
    from compound.models.registry import get_model

    console = console or Console()
    table = load_penguins().dropna(subset=FEATURES + ["sex"]).reset_index(drop=True)
    if rows > len(table) - 6:  # impute learns from the rows left complete
        raise ConfigurationError(
            f"--rows {rows} is too many: the table has {len(table)} complete rows; give at most {len(table) - 6}"
        )
    held_out = table.sample(n=rows, random_state=seed).index
    truth = table.loc[held_out, "sex"].copy()
    table.loc[held_out, "sex"] = None
    backend = get_model(model)
    console.print(f"[bold]compound demo[/]: impute the hidden sex of {rows} penguins with {backend.model_id}")
    with start_run("demo", rows=rows, model=backend.model_id) as r:
        filled = process_table(impute_op(table, "sex", input_columns=FEATURES, model=backend), table, progress=True).df

    out = Table("species", "island", "body_mass_g", "truth", "imputed", "ok")
    correct = 0
    for i in held_out:
        ok = filled.at[i, "sex"] == truth[i]
        correct += ok
        out.add_row(
            table.at[i, "species"],
            table.at[i, "island"],
            f"{table.at[i, 'body_mass_g']:.0f}",
            truth[i],
            str(filled.at[i, "sex"]),
            "yes" if ok else "no",
        )
    console.print(out)
    majority = truth.value_counts().iloc[0]
    accuracy = correct / rows
    console.print(f"accuracy {accuracy:.2f} ({correct}/{rows}); majority-class baseline {majority / rows:.2f}")

    usage = Table("usage", "calls", "prompt tok", "completion tok", "wall s", "CPU s", "USD", "energy J")
    for name, u in (("physical", r.usage.physical), ("cached", r.usage.cached)):
        est = " (est.)" if u.energy_estimated else ""
        usage.add_row(
            name,
            str(u.calls),
            str(u.prompt_tokens),
            str(u.completion_tokens),
            f"{u.wall_s:.2f}",
            f"{u.cpu_s:.2f}",
            f"{u.cost_usd:.4f}",
            f"{u.energy_j:.1f}{est}",
        )
    console.print(usage)
    console.print(f"run id {r.id}: see it with  compound traces show {r.id}")
    return {"accuracy": accuracy, "run_id": r.id, "usage": r.usage.to_dict()}
