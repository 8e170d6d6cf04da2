"""The ``compound`` command line: one module per command group, all printing through one console.

``support`` holds what every command shares (the console, error lines, option checks); each other module
is one command or group: ``ask``, ``models``, ``traces``, ``table`` (``table`` and ``jobs``; the durable
file job itself is ``table_job``), ``compare`` (``compare`` and ``scale``), ``optimize``, ``demo``, ``distill``,
``serve`` (``serve``, ``ui``, ``keys``) and ``doctor``. Only this package imports typer; the library
below it never imports the command line.
"""

from __future__ import annotations

from typing import NoReturn

import typer

from compound.cli import ask, compare, demo, distill, doctor, models, optimize, serve, support, table, traces

app = typer.Typer(
    help="compound: typed programs over small and large models, with budgets, caching and traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# the order here is the order of ``compound --help``
app.add_typer(models.app, name="models")
app.add_typer(traces.app, name="traces")
app.add_typer(distill.app, name="distill")
serve.register(app)
app.command("doctor")(doctor.doctor)
app.command()(ask.ask)
app.command()(table.table)
app.command()(table.jobs)
app.command()(compare.compare)
app.command()(compare.scale)
app.command()(optimize.optimize)
app.command()(demo.demo)


def main() -> NoReturn:
    """The console script: every error ends as one line on stderr and a non-zero status (no traceback)."""
    support.main(app)


__all__ = ["app", "main"]
