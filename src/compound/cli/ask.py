"""``compound ask``: one prompt to one model, the answer printed (JSON valid for ``--schema`` when given)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from compound.cli.support import COUNT, LIMIT, console, err, fail, usage_line


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
    from compound.models.typed import call_typed
    from compound.store.traces import start_run

    backend = get_model(model)
    with start_run("ask", prompt=prompt) as r:
        if schema is not None:
            try:
                schema_obj = json.loads(schema.read_text())
            except (OSError, json.JSONDecodeError) as e:
                fail(f"cannot read JSON schema {schema}: {e}; give a file holding one JSON object")
            if not isinstance(schema_obj, dict):
                fail(f"{schema}: a JSON Schema is a JSON object, not {type(schema_obj).__name__}; fix the file")
            typed = call_typed(schema_obj, prompt, model=backend, max_tokens=max_tokens, temperature=temperature)
            console.print_json(json.dumps(typed.value))
        else:
            gen = backend.generate(prompt, max_tokens=max_tokens, temperature=temperature)
            console.print(gen.text, highlight=False, markup=False)
    if show_usage:
        err.print(usage_line(r.usage.total.to_dict()) + f"  run {r.id}")
