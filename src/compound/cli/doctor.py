"""``compound doctor``: the report of ``compound.doctor.run_doctor`` as tables, or as JSON with ``--json``."""

from __future__ import annotations

import json
from typing import Any

import typer

from compound.cli.support import console
from compound.doctor import run_doctor


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    cpu = report["cpu"]
    flags = " ".join(f"{f}={'yes' if v else 'no'}" for f, v in cpu["flags"].items())
    console.print(f"[bold]CPU[/] {cpu['model']} ({cpu['cores']} cores): {flags}")
    for name, e in report["engines"].items():
        if not e["installed"]:
            console.print(f"[bold]engine {name}[/]: not installed")
            continue
        amx = "[red]has AMX kernels[/]" if e["amx_kernels"] else "no AMX kernels"
        console.print(f"[bold]engine {name}[/] {e['version']} ({amx}): {e['system_info']}")
    table = Table("model", "engine", "status", "prompt tokens", "load s", "call CPU s", "detail")
    for m in report["models"]:
        if m["status"] == "ok":
            row = [str(m["prompt_tokens"]), str(m["load_s"]), str(m["cpu_s"]), repr(m["reply"])]
        elif m["status"] == "crashed":
            row = ["", "", "", f"signal {m['signal']}, exit status {m['exit_status']}: {m['hint']}"]
        else:
            row = ["", "", "", m.get("hint") or m.get("stderr_tail", "")[-300:]]
        style = "green" if m["status"] == "ok" else "red"
        table.add_row(m["model"], m["engine"], f"[{style}]{m['status']}[/]", *row)
    console.print(table)
    if "server" in report:
        console.print(f"[bold]server[/] {json.dumps(report['server'])}")


def doctor(
    model: list[str] = typer.Option(None, "--model", "-m", help="check these models (default: every installed one)"),
    engine: str | None = typer.Option(None, "--engine", help="xllamacpp or llama-cpp-python (default: the setting)"),
    base_url: str | None = typer.Option(None, "--base-url", help="also report this OpenAI-compatible server"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help="key for --base-url"),
    timeout: float = typer.Option(300.0, "--timeout", help="seconds each model check may take"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
) -> None:
    """Check the CPU, the engines, each installed model (in a child process) and optionally a server."""
    report = run_doctor(model, engine, base_url, api_key, timeout)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report, console)
    raise typer.Exit(0 if report["ok"] else 1)
