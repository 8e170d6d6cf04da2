"""``compound serve``, ``compound ui`` and ``compound keys``: the server in the foreground with uvicorn.

``serve`` builds the app from saved programs, models, a key file and ``COMPOUND_API_KEYS``; with no
program and no ``-m`` it serves the installed embedded models, and it says what it serves on stderr at
start-up. ``ui`` serves the web UI alone; ``keys add`` writes a key file (only the hash of each secret is
stored).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

keys_app = typer.Typer(help="API keys for compound serve (hashed at rest).", no_args_is_help=True)


def build_app(
    programs: list[str], models: list[str], key_file: Path | None, reports: list[Path], limits: Any, ui: bool = True
) -> Any:
    from compound.core.settings import get_settings
    from compound.serve.app import create_app
    from compound.serve.keys import KeyStore, env_keys, read_key_file
    from compound.serve.programs import load_served

    served = [load_served(p) for p in programs]
    if not served and not models:
        models = default_models()
    names = ", ".join(p.name for p in served) or "none"
    typer.echo(f"compound serve: programs: {names}; models: {', '.join(models) or 'none'}", err=True)
    store = KeyStore.at(get_settings().home / "serve.sqlite")
    keys = read_key_file(key_file) if key_file else []
    keys += env_keys(os.environ.get("COMPOUND_API_KEYS"), {})
    store.set_keys(keys)
    return create_app(served, {m: m for m in models}, store, limits, [str(r) for r in reports], ui=ui)


def default_models() -> list[str]:
    """What ``compound serve`` serves when nothing is named: the installed embedded models."""
    from compound.core.errors import ConfigurationError
    from compound.models.embedded import EMBEDDED, installed_models

    found = installed_models()
    if not found:
        raise ConfigurationError(
            "compound serve was given no program and no -m model, and no embedded model is installed: "
            f"run `compound models install {next(iter(EMBEDDED))}`, or name a program or -m MODEL"
        )
    return found


def register(app: typer.Typer) -> None:
    """Add the commands to the main CLI."""
    app.add_typer(keys_app, name="keys")

    @app.command()
    def serve(
        programs: list[str] = typer.Argument(None, help="saved program files (program.json) or 'write_email'"),
        model: list[str] = typer.Option([], "--model", "-m", help="a model to serve by name (repeatable)"),
        host: str = typer.Option("127.0.0.1", help="address to listen on"),
        port: int = typer.Option(8000, help="port"),
        key_file: Path | None = typer.Option(None, "--keys", help="key file from `compound keys add` (none: open)"),
        reports: list[Path] = typer.Option([], "--reports", help="folders of compare/scale JSON shown at /ui"),
        max_body_bytes: int = typer.Option(1_000_000, help="largest request body"),
        max_inflight: int = typer.Option(64, help="requests run at once"),
        max_waiting: int = typer.Option(256, help="requests that may wait for a slot; more get 429"),
        wait_s: float = typer.Option(30.0, help="longest wait for a slot before 429"),
    ) -> None:
        """Serve saved programs and models: an OpenAI-compatible API, /v1/programs/NAME/run, /metrics, /ui.
        With neither a program nor -m, the installed embedded models are served."""
        import uvicorn

        from compound.serve.app import Limits

        limits = Limits(max_body_bytes, max_inflight, max_waiting, wait_s)
        api = build_app(programs or [], model, key_file, reports, limits)
        if key_file is None and not os.environ.get("COMPOUND_API_KEYS"):
            typer.echo("warning: no API keys configured (--keys or COMPOUND_API_KEYS): the server is open", err=True)
        uvicorn.run(api, host=host, port=port, log_level="info")

    @app.command()
    def ui(
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8001),
        reports: list[Path] = typer.Option([], "--reports", help="folders of compare/scale JSON results"),
        model: str | None = typer.Option(None, "--model", "-m", help="model for the Write box"),
    ) -> None:
        """The web UI alone: runs and their traces, jobs, reports, and the Write box."""
        import uvicorn

        from compound.serve.app import create_app
        from compound.serve.programs import served_program
        from compound.serve.write_email import WriteEmail

        api = create_app(
            [served_program("write_email", WriteEmail(model=model))], {}, None, None, [str(r) for r in reports]
        )
        uvicorn.run(api, host=host, port=port, log_level="info")

    @keys_app.command("add")
    def keys_add(
        name: str = typer.Argument(..., help="who the key is for"),
        key_file: Path = typer.Option(..., "--keys", help="key file to add to (created if missing)"),
        calls: int | None = typer.Option(None, help="API calls per day"),
        tokens: int | None = typer.Option(None, help="tokens per day"),
        cost_usd: float | None = typer.Option(None, help="US dollars per day"),
        energy_j: float | None = typer.Option(None, help="joules per day"),
    ) -> None:
        """Add a key; its secret is printed once and only its salted scrypt hash is stored."""
        from compound.core.errors import ConfigurationError
        from compound.serve.keys import new_key, read_key_file, write_key_file

        keys = read_key_file(key_file)
        if any(k.name == name for k in keys):
            raise ConfigurationError(f"{key_file} already has a key named {name!r}")
        key, secret = new_key(name, calls=calls, tokens=tokens, cost_usd=cost_usd, energy_j=energy_j)
        write_key_file(key_file, [*keys, key])
        typer.echo(secret)
