"""``compound demo``: the main job, imputing a real table's held-out cells three ways."""

from __future__ import annotations

from pathlib import Path

import typer

from compound.cli.support import COUNT, console


def demo(
    rows: int = typer.Option(24, help="how many held-out rows to impute", callback=COUNT),
    model: str | None = typer.Option(None, "--model", "-m", help="the large model (default: qwen2.5-coder-1.5b)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the figures here too"),
) -> None:
    """The main job: impute a real table's held-out cells three ways (small, large, compound); compare the costs."""
    from compound.demo import run_demo
    from compound.models.embedded import LARGE as LARGE_MODEL

    run_demo(rows=rows, console=console, json_out=json_out, large=model or LARGE_MODEL)
