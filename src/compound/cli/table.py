"""``compound table`` (a table operator over a file, as a durable, resumable job) and ``compound jobs``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from compound.cli.support import COUNT, LIMIT, SIZE, console, fail, number, usage_line, warn


def _auto_forecast(spec: dict[str, Any]) -> dict[str, Any]:
    """Print classify --auto's forecast (a few measured teacher labels and embeddings) and return its record."""
    from compound.cli.table_job import auto_forecast
    from compound.core.settings import get_settings

    forecast, record = auto_forecast(spec)
    console.print(
        f"forecast (measured on {record['probe_rows']} teacher labels, {record['probe_cpu_s']:.1f} CPU s, kept "
        "for the run):",
        highlight=False,
    )
    for line in forecast.lines(get_settings().watts_per_core, record["usd_per_row"]):
        console.print(line, highlight=False, markup=False)
    return record


def table(
    op: str | None = typer.Argument(
        None, help="map | filter | classify | extract | impute | describe | join | top_k | aggregate | dedup"
    ),
    input: Path | None = typer.Argument(None, help="CSV, Excel or Parquet file (join: the left table)"),
    column: str | None = typer.Option(None, "--column", "-c", help="the column to write (or to impute)"),
    labels: str | None = typer.Option(None, help="classify: comma-separated labels"),
    instruction: str | None = typer.Option(
        None, help="map/classify/describe/aggregate: what to do; top_k: what ranks higher; dedup: what a duplicate is"
    ),
    input_columns: str | None = typer.Option(
        None, "--input-columns", help="comma-separated columns the model sees (default: all)"
    ),
    source: str | None = typer.Option(None, help="extract: the text column"),
    fields: str | None = typer.Option(None, help="extract: NAME[:TYPE],... with TYPE str|int|float|bool"),
    condition: str | None = typer.Option(None, help="filter: the condition rows must meet; join: pairs must meet"),
    by: str | None = typer.Option(None, help="describe/aggregate: one answer per group of this column"),
    right: Path | None = typer.Option(None, help="join: the right table (CSV, Excel or Parquet)"),
    k: int | None = typer.Option(None, "--k", help="top_k: how many rows", callback=COUNT),
    columns: str | None = typer.Option(None, help="dedup: comma-separated columns that make rows duplicates"),
    cascade: bool = typer.Option(
        False, "--cascade", help="join: embedding similarity answers the pairs it is certified for, the model the rest"
    ),
    recall: float | None = typer.Option(
        None, help="join --cascade: the recall to certify (default 0.9)", callback=number(above=0, at_most=1)
    ),
    precision: float | None = typer.Option(
        None, help="join --cascade: the precision to certify (default 0.9)", callback=number(above=0, at_most=1)
    ),
    block_k: int | None = typer.Option(
        None,
        "--block-k",
        help="join/dedup: the nearest rows each row is paired with (default 5; dedup 3)",
        callback=COUNT,
    ),
    context_tokens: int | None = typer.Option(
        None, "--context-tokens", help="aggregate: the model's context (default: the configured n_ctx)", callback=COUNT
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="output file (format from its extension)"),
    model: str | None = typer.Option(None, "--model", "-m"),
    job: str | None = typer.Option(None, "--job", help="job id (default: a new one)"),
    resume: str | None = typer.Option(
        None, "--resume", help="finish a stopped job; every other option comes from the job"
    ),
    max_cost: float | None = typer.Option(
        None, help="stop (resumably) before spending more US dollars", callback=LIMIT
    ),
    max_tokens: int | None = typer.Option(None, help="stop (resumably) before using more tokens", callback=SIZE),
    max_seconds: float | None = typer.Option(None, help="stop (resumably) after this many seconds", callback=LIMIT),
    max_calls: int | None = typer.Option(None, help="stop (resumably) after this many model calls", callback=SIZE),
    progress: bool = typer.Option(True, help="show a progress bar"),
    auto: bool = typer.Option(
        False, "--auto", help="classify/impute: teach a cheap student first, the model only for unsure rows"
    ),
    target: float | None = typer.Option(
        None,
        help="--auto: the agreement the student's answers must show (classify: with the model's labels, "
        "default 0.9, or with --examples accuracy on them, default the model's own; impute: with the complete "
        "rows, default 0.9)",
        callback=number(above=0, at_most=1),
    ),
    delta: float | None = typer.Option(
        None,
        help="--auto or join --cascade: the guarantee's failure probability (default 0.1)",
        callback=number(above=0, at_most=1),
    ),
    encoding: str | None = typer.Option(
        None, help="CSV/TSV: the file's encoding (default: UTF-8, or what its byte-order mark says)"
    ),
    delimiter: str | None = typer.Option(None, help="CSV: the field separator (default: ',' and, for .tsv, tab)"),
    sheet: str | None = typer.Option(None, help="Excel: the sheet to process (default: the first)"),
    examples: Path | None = typer.Option(
        None,
        "--examples",
        help="classify --auto: labelled rows (CSV, Excel, Parquet or JSON Lines; the input columns and a --column "
        "column of labels; 20 at least): the students are certified against them and the model's accuracy on "
        "them is measured",
    ),
    label_column: str | None = typer.Option(
        None,
        "--label-column",
        help="classify --auto: a column of the input whose filled cells are labels: those rows are the examples "
        "(and their answers are their own labels)",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="classify --auto: print the forecast (large model alone vs auto) and stop"
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="compute the rows on Ray: auto (the cluster `ray start` runs on this machine), HOST:6379, "
        "ray://HOST:10001, or local (a Ray started for this job); the job, cache, budgets and resume are the same",
    ),
    workers: int | None = typer.Option(None, help="--ray: how many workers (default 2), one CPU each", callback=COUNT),
) -> None:
    """Run a table operator over a file as a durable, resumable job."""
    from compound.cli.table_job import run_file_job

    limits = {"cost_usd": max_cost, "tokens": max_tokens, "wall_s": max_seconds, "calls": max_calls}
    if delimiter is not None and len(delimiter) != 1:
        fail(f"--delimiter must be one character, got {delimiter!r}; e.g. --delimiter ';'")
    if target is not None and not auto:
        fail("--target sets auto's guarantee: add --auto (classify or impute)")
    if delta is not None and not (auto or cascade):
        fail("--delta sets a guarantee: add --auto (classify or impute) or --cascade (join)")
    if workers is not None and ray is None:
        fail("--workers sets how many Ray workers compute the rows: add --ray ADDRESS (or --ray local)")
    runner = None
    if ray is not None:
        from compound.tables.ray_runner import RayRunner

        runner = RayRunner(address=None if ray == "local" else ray, workers=workers or 2)
    spec = {
        "op": op,
        "input": str(input) if input else None,
        "out": str(out) if out else None,
        "column": column,
        "instruction": instruction,
        "source": source,
        "fields": fields,
        "condition": condition,
        "by": by,
        "model": model,
        "auto": True if auto else None,  # None: not given (so --resume does not see it as a change)
        "target": target,
        "delta": delta,
        "job_id": job,
        "labels": [x.strip() for x in labels.split(",")] if labels else None,
        "input_columns": [x.strip() for x in input_columns.split(",")] if input_columns else None,
        "encoding": encoding,
        "delimiter": delimiter,
        "sheet": sheet,
        "right": str(right) if right else None,
        "k": k,
        "columns": [x.strip() for x in columns.split(",") if x.strip()] if columns else None,
        "cascade": True if cascade else None,
        "recall": recall,
        "precision": precision,
        "block_k": block_k,
        "context_tokens": context_tokens,
        "examples": str(examples) if examples else None,
        "label_column": label_column,
    }
    if resume is None:
        if op is None or input is None:
            fail("give OP and INPUT (or --resume JOB)")
        spec["out"] = str(out or input.with_name(f"{input.stem}.{op}{input.suffix}"))
    if dry_run and not (auto and op == "classify" and resume is None):
        fail("--dry-run prints the forecast of a new classify --auto job: add --auto (classify)")
    forecast = _auto_forecast(spec) if auto and op == "classify" and resume is None else None
    if dry_run:
        return
    result, path = run_file_job(spec, resume=resume, limits=limits, progress=progress, runner=runner)
    u = result.usage
    console.print(
        f"job {result.job_id}: {result.rows} rows ({result.computed} computed, {result.from_cache} from cache, "
        f"{result.from_checkpoint} from the checkpoint) -> {path}",
        highlight=False,
        markup=False,
    )
    console.print(
        "physical: " + usage_line(u.physical.to_dict()) + "   cached: " + usage_line(u.cached.to_dict()),
        highlight=False,
    )
    if runner is not None:
        o = runner.options
        console.print(
            f"on Ray ({ray}): {o.workers} worker(s), started in {runner.started_s:.1f} s", highlight=False, markup=False
        )
    if result.setup:
        from compound.optimize.auto import summary_line

        console.print(summary_line(result.setup, u.physical.to_dict(), result.df), highlight=False)
        if forecast is not None:
            spent = result.setup["one_time"]["cpu_s"] + u.physical.cpu_s + u.cached.cpu_s
            expected = forecast["forecast"]["expected_cpu_s"]
            console.print(
                f"forecast before the run: {expected:,.1f} CPU s (stage shares assumed); spent: {spent:,.1f} CPU s "
                f"({(spent - expected) / max(expected, 1e-9):+.0%}; cached replies at the CPU they cost)",
                highlight=False,
            )
    if result.report:
        console.print(report_line(spec.get("op") or "", result.report), highlight=False, markup=False)
    for note in result.notes:
        warn(note)
    if result.failed:
        position, why = next(iter(result.failed.items()))
        warn(f"{len(result.failed)} row(s) got no valid reply and were left empty, e.g. row {position + 1}: {why}")


def report_line(op: str, report: dict) -> str:
    """What an operator over several rows did, in one line (``StagedOp.report``)."""
    r = report
    if "candidates" in r and "pairs" in r:  # join
        line = (
            f"join: {r['pairs']} pairs, {r['candidates']} candidates after blocking, {r['reached_model']} reached "
            f"the model ({r['share_reached_model']:.0%} of the candidates), {r['matches']} matches"
        )
        if "sampled" in r:
            line += f"; similarity accepted {r['accepted_by_similarity']} and rejected {r['rejected_by_similarity']}"
        return line
    if "comparisons" in r:
        ties = f", {r['ties']} tied (decided by embeddings)" if r.get("ties") else ""
        return f"top_k: {r['comparisons']} comparisons in both orders, {r['calls']} calls (bound {r['bound']}){ties}"
    if "folded" in r:
        return (
            f"{op}: {r['groups']} group(s), {r['folded']} row(s) folded into summaries, {r['dropped']} dropped, "
            f"{r['levels']} level(s) (bound {r['bound']} calls)"
        )
    return f"dedup: {r['candidates']} candidate pairs, {r['confirmed']} confirmed, {r['duplicates']} duplicate rows"


def jobs(limit: int = typer.Option(20, help="how many", callback=COUNT)) -> None:
    """The latest table jobs and how far each got."""
    from compound.tables.joblock import job_running
    from compound.tables.jobs import job_store

    t = Table("id", "op", "status", "done", "input", "out")
    for j in job_store().list(limit):
        status = j["status"]
        if status == "running" and not job_running(j["id"]):
            status = "interrupted"  # no process holds it: it was killed; resume it
        t.add_row(
            j["id"],
            j["spec"].get("op", ""),
            status,
            f"{j['done']}/{j['total']}",
            j["spec"].get("input", ""),
            j["spec"].get("out", ""),
        )
    console.print(t)
