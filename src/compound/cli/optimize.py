"""``compound optimize``: the cheapest configuration of a classification job that meets a quality target.

It prints the forecast of the search and of the job (from a few measured calls) before it spends anything
else; ``--dry-run`` stops there. Then it scores every configuration, prints them with the Pareto front,
saves the chosen program (``Module.save``: versioned JSON) and says which it chose, or, when none meets
the target, says so with the best found and its cost (exit status 1). The search is
``compound.evaluate.search``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from compound.cli.support import COUNT, FRACTION, SIZE, console, fail, number


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _fmt(d: dict[str, float]) -> dict[str, Any]:
    return {
        "calls": round(d["calls"]),
        "tokens": round(d["total_tokens"]),
        "cpu_s": round(d["cpu_s"], 2),
        "usd": round(d["cost_usd"], 4),
        "joules": round(d["energy_j"], 1),
    }


def optimize(
    data: Path = typer.Option(..., "--data", help="labelled rows: JSON Lines, CSV, Excel or Parquet"),
    input_col: str = typer.Option(..., "--input", help="the column the model reads"),
    label_col: str = typer.Option(..., "--label", help="the column with the right answer"),
    target: float = typer.Option(..., help="the accuracy to reach, with confidence 1 - delta", callback=FRACTION),
    delta: float = typer.Option(
        0.05, help="the chance the accuracy bound is wrong", callback=number(above=0, at_most=1)
    ),
    labels: str | None = typer.Option(None, help="comma-separated labels (default: those in the data)"),
    models: str = typer.Option(
        "small,medium,large", help="comma-separated: small, medium, large, a model id, student:DIR"
    ),
    strategies: str = typer.Option("single,vote3,repair", help="comma-separated: single, voteN, repair"),
    optimizers: str = typer.Option(
        "none,knn,boot", help="comma-separated: none, knn, boot, proxy (a local student in front of the model)"
    ),
    evaluate: int = typer.Option(100, help="rows each configuration is scored on", callback=COUNT),
    train: int = typer.Option(40, help="other rows the optimizers learn from", callback=SIZE),
    job_rows: int | None = typer.Option(None, help="rows of the job to forecast (default: the file's)", callback=COUNT),
    probe: int = typer.Option(
        3, help="rows each model and strategy answers to measure its cost before the forecast", callback=COUNT
    ),
    max_calls: int | None = typer.Option(None, help="the most model calls the search may make", callback=COUNT),
    max_usd: float | None = typer.Option(None, help="the most dollars the search may spend", callback=number(above=0)),
    cost: str = typer.Option("cpu_s", help="what cheapest means: cpu_s, usd or joules per row"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the forecast and stop"),
    save: Path = typer.Option(Path("optimized.json"), help="where the chosen program is saved"),
    json_out: Path | None = typer.Option(None, "--json", help="write the forecast and the results here"),
    seed: int = typer.Option(0),
) -> None:
    """Search models, strategies and optimizers for the cheapest configuration that meets --target."""
    import compound
    from compound.core.concurrency import run_sync
    from compound.evaluate import search as s
    from compound.evaluate.compare import load_labelled
    from compound.evaluate.report import text_table

    if cost not in s.COSTS:
        fail(f"--cost must be one of {', '.join(s.COSTS)}, got {cost!r}")
    df = load_labelled(data, input_col, label_col)
    task = s.Task.split(
        df,
        input_col,
        label_col,
        target=target,
        delta=delta,
        evaluate=evaluate,
        train=train,
        job_rows=job_rows,
        labels=_names(labels) if labels else None,
        seed=seed,
    )
    configs = s.configurations(_names(models), _names(strategies), _names(optimizers))
    limits = {"calls": max_calls, "cost_usd": max_usd}
    with compound.budget(**limits):
        planned = run_sync(s.forecast(task, configs, probe, cost))
    table = [
        {"config": r["config"], **_fmt(r["search"]), **{f"job_{k}": v for k, v in _fmt(r["job"]).items()}}
        for r in planned["configs"]
    ]
    console.print(
        text_table(
            table,
            f"forecast from {planned['probe_rows']} measured rows per model and strategy (job: {task.job_rows} rows)",
        )
    )
    total = _fmt(planned["search"])
    hits = round(planned["cached"]["calls"])
    console.print(
        "forecast of the search: "
        + ", ".join(f"{v} {k}" for k, v in total.items())
        + (f", less {hits} calls its own cache will answer" if hits else "")
        + f" (measuring it spent {planned['probe_spent']['calls']} calls and "
        f"{planned['probe_spent']['cpu_s']:.2f} CPU-s, loading the models included; "
        "replies cached by earlier runs are not forecast)",
        highlight=False,
    )
    if max_calls is not None and total["calls"] > max_calls:
        console.print(
            f"the search may stop at --max-calls {max_calls} before it scores every configuration", highlight=False
        )
    result: dict[str, Any] = {"forecast": planned}
    if not dry_run:
        with compound.budget(**limits):
            found = run_sync(s.search(task, configs, planned, cost))
        program = found.pop("program")
        result.update(found)
        rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in found["rows"]]
        if rows:
            console.print(
                text_table(
                    rows, f"{data.name}: {found['evaluated_rows']} rows evaluated, target {target} at delta {delta}"
                )
            )
        spent = _fmt(found["spent"])
        cached = found["cached"]["calls"]
        console.print(
            "the search spent: "
            + ", ".join(f"{v} {k}" for k, v in spent.items())
            + (f"; {cached} more calls were answered from the cache" if cached else ""),
            highlight=False,
        )
        if found["stopped"]:
            console.print(f"stopped early: {found['stopped']}", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, default=str))
        console.print(f"wrote {json_out}")
    if dry_run:
        return
    best = result["best"]
    if best is None:
        fail("the search scored no configuration (the budget ran out first); raise --max-calls or --max-usd")
    cost = f"{best['cpu_s_per_row']:.3f} CPU-s, ${best['usd_per_row']:.5f} and {best['joules_per_row']:.1f} J per row"
    if not result["met"]:
        fail(
            f"no configuration reached accuracy {target} with confidence {1 - delta:g}: the best was {best['config']} "
            f"(accuracy {best['accuracy']:.3f}, bound {best['accuracy_lower']:.3f}) at {cost}; "
            "add larger models or more evaluation rows, or lower --target"
        )
    program.save(save)
    console.print(
        f"chose {best['config']}: accuracy {best['accuracy']:.3f} (at least {best['accuracy_lower']:.3f} with "
        f"confidence {1 - delta:g}) at {cost}; saved {save}",
        highlight=False,
    )
