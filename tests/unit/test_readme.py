"""The README's Python blocks run as written, on the scripted backend.

Every ```python block of README.md runs in order in one namespace (a block may continue the one
before), in a scratch folder, with every model replaced by a scripted backend that answers each typed
call with a value that fits its schema, and real model calls forbidden. A block that needs something a
unit test cannot have (a server, a cluster, a trained adapter) is marked just above its fence with
``<!-- skip-test: the reason -->``; such skips stay rare and explained.
"""

import json
import re
from pathlib import Path

import pytest

import compound

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"(?:<!--\s*skip-test:\s*(?P<skip>.*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.S)


def blocks() -> list[tuple[int, str, str | None]]:
    text = README.read_text()
    return [(text[: m.start()].count("\n") + 1, m["code"], m["skip"]) for m in FENCE.finditer(text)]


def value_for(schema: dict, defs: dict) -> object:
    """A value that fits a JSON schema (the first enum member, a short text, ...)."""
    if "$ref" in schema:
        return value_for(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if "anyOf" in schema:
        return value_for(schema["anyOf"][0], defs)
    kind = schema.get("type")
    if kind == "object":
        return {k: value_for(v, defs) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [value_for(schema.get("items", {}), defs)]
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind, "Paris")


def reply(request) -> str:
    schema = request.json_schema
    if schema is None:
        return "A short free-text reply."
    return json.dumps(value_for(schema, schema.get("$defs", {})))


def test_the_readme_has_python_blocks_and_few_skips():
    found = blocks()
    assert len(found) >= 4
    skipped = [line for line, _, skip in found if skip]
    assert len(skipped) <= len(found) // 2, f"too many skipped README blocks: lines {skipped}"


def test_every_readme_python_block_runs_on_the_scripted_backend(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = compound.ScriptedBackend(reply, model="readme")
    namespace: dict = {"__name__": "readme"}
    with compound.testing.override(models=fake, allow_model_requests=False):
        for line, code, skip in blocks():
            if skip:
                continue
            try:
                exec(compile(code, f"README.md:{line}", "exec"), namespace)
            except Exception as e:
                pytest.fail(f"README.md block at line {line} failed: {type(e).__name__}: {e}")
    assert fake.requests, "the README's blocks made no model call at all"


def test_readme_and_examples_use_only_the_flat_api():
    deep = re.compile(r"^\s*(from compound\.|import compound\.)", re.M)
    for line, code, _ in blocks():
        assert not deep.search(code), f"README.md block at line {line} imports a deep path"
    # the one deep import an example may make: the server's built-in sample program, which is not root API
    builtin = "from compound.serve.write_email import WriteEmail\n"
    for path in sorted((README.parent / "examples").glob("*.py")):
        text = path.read_text().replace(builtin, "")
        assert not deep.search(text), f"{path.name} imports a deep path; use compound.X"
