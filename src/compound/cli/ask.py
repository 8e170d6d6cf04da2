"""``compound ask``: one prompt to one model, the answer printed (JSON valid for ``--schema`` when given).

With ``--stream`` the answer is printed as the model writes it (``Backend.stream``); with ``--schema`` that
is the constrained JSON as generated, and a reply that has to be repaired is followed, after a note on
stderr, by its repaired version."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from compound.cli.support import COUNT, LIMIT, console, err, fail, usage_line


def ask(
    prompt: str = typer.Argument(..., help="what to ask"),
    model: str | None = typer.Option(None, "--model", "-m", help="embedded name, .gguf path or BACKEND:MODEL"),
    schema: Path | None = typer.Option(None, "--schema", help="JSON schema file: the reply is JSON valid for it"),
    max_tokens: int = typer.Option(256, help="most tokens to generate", callback=COUNT),
    temperature: float = typer.Option(0.0, help="sampling temperature", callback=LIMIT),
    show_usage: bool = typer.Option(False, "--usage", help="print the call's usage on stderr"),
    stream: bool = typer.Option(False, "--stream", help="print the answer as the model writes it"),
) -> None:
    """Ask a model once and print the answer (JSON valid for --schema when given)."""
    from compound.core.protocol import drive
    from compound.core.types import Generation, Request
    from compound.models.base import build_request
    from compound.models.registry import get_model
    from compound.models.typed import call_typed, typed_call
    from compound.store.traces import start_run

    backend = get_model(model)
    calls = 0

    def printed(request: Request) -> Generation:
        """One call, its text written to stdout as it comes."""
        nonlocal calls
        if calls:
            err.print("the reply did not validate; the repaired reply follows")
        calls += 1
        with backend.stream(request) as deltas:
            for delta in deltas:
                sys.stdout.write(delta)
                sys.stdout.flush()
        sys.stdout.write("\n")
        assert deltas.generation is not None
        return deltas.generation

    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
    with start_run("ask", prompt=prompt) as r:
        if schema is not None:
            try:
                schema_obj = json.loads(schema.read_text())
            except (OSError, json.JSONDecodeError) as e:
                fail(f"cannot read JSON schema {schema}: {e}; give a file holding one JSON object")
            if not isinstance(schema_obj, dict):
                fail(f"{schema}: a JSON Schema is a JSON object, not {type(schema_obj).__name__}; fix the file")
            if stream:
                drive(typed_call(schema_obj, prompt, **params), printed)
            else:
                typed = call_typed(schema_obj, prompt, model=backend, **params)
                console.print_json(json.dumps(typed.value))
        elif stream:
            printed(build_request(prompt, params))
        else:
            gen = backend.generate(prompt, **params)
            console.print(gen.text, highlight=False, markup=False)
    if show_usage:
        err.print(usage_line(r.usage.total.to_dict()) + f"  run {r.id}")
