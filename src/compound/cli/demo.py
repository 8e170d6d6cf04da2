"""``compound demo``: the main job, imputing a real table's held-out cells three ways."""

from __future__ import annotations

from pathlib import Path

import typer

from compound.cli.support import COUNT, console
from compound.core.settings import Settings


def demo(
    rows: int = typer.Option(24, help="how many held-out rows to impute", callback=COUNT),
    model: str | None = typer.Option(None, "--model", "-m", help=f"the large model (default: {Settings.large})"),
    json_out: Path | None = typer.Option(None, "--json", help="write the figures here too"),
) -> None:
    """The main job: impute a real table's held-out cells three ways (small, large, compound); compare the costs."""
    from compound.demo import run_demo

    run_demo(rows=rows, console=console, json_out=json_out, large=model)
