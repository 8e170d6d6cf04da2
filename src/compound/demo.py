"""The main job: a small compound program over a real table, on the embedded models.

It takes the Palmer penguins table (shipped in the ``palmerpenguins`` package), hides the ``sex`` of a
few complete rows, and asks a model to fill it in with a typed, grammar-constrained step that sees a few
complete rows as examples. It prints each answer next to the truth, the accuracy against the majority
baseline, and a usage report.
"""

from __future__ import annotations

import csv
import importlib.resources
import random
from typing import Literal

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from compound.core.concurrency import gather, run_sync
from compound.models.registry import get_model
from compound.program.typed import acall_typed
from compound.store.traces import run

FEATURES = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


class Sex(BaseModel):
    sex: Literal["male", "female"]


def load_penguins() -> list[dict[str, str]]:
    try:
        text = importlib.resources.files("palmerpenguins").joinpath("data/penguins.csv").read_text()
    except ModuleNotFoundError:
        raise SystemExit("the demo reads the penguins table from the palmerpenguins package: pip install palmerpenguins") from None
    return list(csv.DictReader(text.splitlines()))


def describe(row: dict[str, str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in FEATURES)


def build_prompt(row: dict[str, str], examples: list[dict[str, str]]) -> str:
    shots = "\n".join(f"{describe(e)} -> sex={e['sex']}" for e in examples)
    return (f"Penguins with known sex (males are larger and heavier than females of the same species):\n{shots}\n\n"
            f"Which sex is this penguin?\n{describe(row)}")


def run_demo(rows: int = 12, model: str | None = None, console: Console | None = None, seed: int = 0) -> dict:
    console = console or Console()
    table = [r for r in load_penguins() if r["sex"] in ("male", "female") and all(r[k] != "NA" for k in FEATURES)]
    rng = random.Random(seed)
    rng.shuffle(table)
    held_out, pool = table[:rows], table[rows:]
    backend = get_model(model)
    console.print(f"[bold]compound demo[/]: impute penguin sex on {len(held_out)} held-out rows with {backend.model_id}")

    async def one(row: dict[str, str]):
        examples = [e for e in pool if e["species"] == row["species"]][:6]
        return await acall_typed(Sex, build_prompt(row, examples), model=backend,
                                 instructions="You fill in missing cells of a table.", max_tokens=16)

    with run("demo", rows=len(held_out), model=backend.model_id) as r:
        results = run_sync(gather([one(row) for row in held_out]))

    out = Table("species", "island", "body_mass_g", "truth", "imputed", "ok")
    correct = 0
    for row, res in zip(held_out, results):
        ok = res.value.sex == row["sex"]
        correct += ok
        out.add_row(row["species"], row["island"], row["body_mass_g"], row["sex"], res.value.sex, "yes" if ok else "no")
    console.print(out)
    majority = max(sum(r["sex"] == s for r in held_out) for s in ("male", "female"))
    accuracy = correct / len(held_out)
    console.print(f"accuracy {accuracy:.2f} ({correct}/{len(held_out)}); majority-class baseline {majority / len(held_out):.2f}")

    usage = Table("usage", "calls", "prompt tok", "completion tok", "wall s", "CPU s", "USD", "energy J")
    for name, u in (("physical", r.usage.physical), ("cached", r.usage.cached)):
        est = " (est.)" if u.energy_estimated else ""
        usage.add_row(name, str(u.calls), str(u.prompt_tokens), str(u.completion_tokens), f"{u.wall_s:.2f}",
                      f"{u.cpu_s:.2f}", f"{u.cost_usd:.4f}", f"{u.energy_j:.1f}{est}")
    console.print(usage)
    console.print(f"run id {r.id}: see it with  compound traces show {r.id}")
    return {"accuracy": accuracy, "run_id": r.id, "usage": r.usage.to_dict()}
