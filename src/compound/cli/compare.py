"""``compound compare`` (configurations on labelled data) and ``compound scale`` (a returns curve)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from compound.cli.support import COUNT, FRACTION, SIZE, console, number, parse_counts
from compound.core.settings import Settings


def compare(
    data: Path = typer.Option(..., "--data", help="labelled rows: JSON Lines, CSV, Excel or Parquet"),
    input_col: str = typer.Option(..., "--input", help="the column the model reads"),
    label_col: str = typer.Option(..., "--label", help="the column with the right answer"),
    labels: str | None = typer.Option(None, help="comma-separated labels (default: those in the data)"),
    configs: str = typer.Option(
        "small,large,auto", help="comma-separated: small, medium, large, small-knn, small-boot, voteN, cascade, auto"
    ),
    limit: int = typer.Option(100, help="rows evaluated", callback=COUNT),
    calibration: int = typer.Option(100, help="other rows, used to learn and calibrate", callback=SIZE),
    small: str = typer.Option(Settings.small, help="the small model"),
    large: str = typer.Option(Settings.large, help="the large model"),
    target: float | None = typer.Option(
        None,
        help="agreement a cascade must reach (default: the large model's accuracy on the calibration rows); "
        "auto's stages: agreement with the large model (default 0.9)",
        callback=FRACTION,
    ),
    delta: float = typer.Option(
        0.1, help="failure probability of the cascade guarantee", callback=number(above=0, at_most=1)
    ),
    seed: int = typer.Option(0),
    json_out: Path | None = typer.Option(None, "--json", help="write the results here"),
    plot: Path | None = typer.Option(None, help="PNG path (default: beside --json); an HTML page is written beside it"),
) -> None:
    """Compare configurations on your labelled data: accuracy, calls, tokens, CPU s, joules, money, Pareto front;
    a configuration that another beats (no more CPU per row, one-time cost amortised, and no less accuracy) is
    marked dominated, naming the one that beats it."""
    from compound.core.concurrency import run_sync
    from compound.evaluate import compare as cmp
    from compound.evaluate.report import text_table

    df = cmp.load_labelled(data, input_col, label_col)
    names = [c.strip() for c in configs.split(",") if c.strip()]
    result = run_sync(
        cmp.compare(
            df,
            input_col,
            label_col,
            names,
            labels=[x.strip() for x in labels.split(",")] if labels else None,
            limit=limit,
            calibration=calibration,
            small=small,
            large=large,
            target=target,
            delta=delta,
            seed=seed,
            progress=True,
        )
    )
    shown = [{**r, "dominated_by": r["dominated_by"] or ""} for r in result["rows"]]
    console.print(text_table(shown, f"{data.name}: {limit} rows evaluated"))
    for line in dominated_lines(result["rows"], limit):
        console.print(line, highlight=False)
    for name, info in result["details"].items():
        what = "planner" if name == "auto" else "calibration"
        console.print(f"{name} {what}: {json.dumps(info, default=str)}", highlight=False)
    cost = result["cost"]
    title = f"{data.name}: accuracy against CPU seconds per row (one-time amortised)"
    _write_results(result, json_out, plot, "accuracy", cost, "config", title, False)


def dominated_lines(rows: list[dict], evaluated: int) -> list[str]:
    """One line per dominated configuration: which one dominates it, at what cost and accuracy."""
    by_name = {r["config"]: r for r in rows}
    out = []
    for r in rows:
        if r.get("dominated_by"):
            d = by_name[r["dominated_by"]]
            out.append(
                f"{r['config']} is dominated by {d['config']}: accuracy {d['accuracy']:.3f} against "
                f"{r['accuracy']:.3f}, at {d['amortised_cpu_s_per_row']:.4g} CPU s per row against "
                f"{r['amortised_cpu_s_per_row']:.4g} (one-time costs spread over the {evaluated} rows)"
            )
    return out


def _write_results(
    result: dict, json_out: Path | None, plot: Path | None, quality: str, cost: str, label: str, title: str, log_x: bool
) -> None:
    from compound.evaluate.report import html_report, plot_quality_vs_cost

    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2, default=str))
        console.print(f"wrote {json_out}")
    png = plot or (json_out.with_suffix(".png") if json_out else None)
    if png is not None:
        plot_quality_vs_cost(result["rows"], quality, cost, label, png, title, log_x)
        page = html_report(title, result["rows"], png, png.with_suffix(".html"))
        console.print(f"wrote {png} and {page}")


def scale(
    data: Path = typer.Option(..., "--data", help="labelled rows: JSON Lines, CSV, Excel or Parquet"),
    input_col: str = typer.Option(..., "--input"),
    label_col: str = typer.Option(..., "--label"),
    labels: str | None = typer.Option(None, help="comma-separated labels (default: those in the data)"),
    model: str = typer.Option(Settings.small, "--model", "-m"),
    ns: str = typer.Option("1,2,4,8,16", help="sample counts to try"),
    limit: int = typer.Option(50, help="rows of the file to measure on", callback=COUNT),
    min_gain: float = typer.Option(
        0.001, help="accuracy an extra CPU-second must buy; below it more samples do not pay", callback=number()
    ),
    seed: int = typer.Option(0),
    json_out: Path | None = typer.Option(None, "--json"),
    plot: Path | None = typer.Option(None),
) -> None:
    """The returns curve of self-consistency at N = 1, 2, 4, 8, 16, and the N where more stops paying."""
    from compound.core.concurrency import run_sync
    from compound.evaluate import compare as cmp
    from compound.evaluate.report import text_table
    from compound.evaluate.scale import returns_curve

    df = cmp.load_labelled(data, input_col, label_col)
    sample = cmp.split(df, limit, 0, seed).evaluate
    label_list = [x.strip() for x in labels.split(",")] if labels else sorted(df[label_col].unique().tolist())
    result = run_sync(
        returns_curve(
            sample, input_col, label_col, label_list, model, parse_counts(ns, "--ns"), min_gain, progress=True
        )
    )
    console.print(text_table(result["rows"], f"self-consistency with {model} on {limit} rows"))
    console.print(
        f"recommended N: {result['recommended_n']} (each extra CPU-second must buy at least {min_gain} accuracy); "
        f"best accuracy at N={result['best_accuracy_n']}"
    )
    for r in result["rows"]:
        r["pareto"] = False
    _write_results(result, json_out, plot, "accuracy", "cpu_s", "n", f"returns curve: {model}", True)
