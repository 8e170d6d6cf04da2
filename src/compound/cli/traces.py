"""``compound traces``: list, show and export the audit trail of runs, steps and model calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.tree import Tree

from compound.cli.support import COUNT, console, fail

app = typer.Typer(help="The audit trail of runs, steps and model calls.", no_args_is_help=True)


@app.command("list")
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


@app.command("show")
def traces_show(span_id: str = typer.Argument(..., help="a run or call id (a unique prefix works)")) -> None:
    """Show a model call in full, or a run as a tree of its steps and calls."""
    from compound.store.traces import trace_store

    store = trace_store()
    s = store.get(span_id)
    if s is None:
        fail(f"no trace with id {span_id!r} (or the prefix is not unique); see: compound traces list")
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


@app.command("export")
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
