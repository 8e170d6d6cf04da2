"""Hostile schemas and token limits: refused before any model call, with the problem and the fix named.

A schema that is not JSON Schema and ``max_tokens`` of 0 or less, through every door a user has: the
Python API (``call_typed``, ``generate``, ``Predict``) and the server's request (the CLI's doors are in
test_cli.py)."""

import pytest
from pydantic import BaseModel

import compound
from compound import ScriptedBackend
from compound.core.errors import ConfigurationError, InputError
from compound.models.typed import call_typed

NOT_SCHEMAS = [
    {"type": "objekt"},
    {"type": "object", "properties": {"a": {"type": 3}}},
    {"type": "object", "required": "a"},
    {"properties": []},
    {"type": "array", "items": "string"},
    {"type": "string", "maxLength": -1},
]


@pytest.mark.parametrize("schema", NOT_SCHEMAS, ids=lambda s: str(s)[:40])
def test_a_schema_that_is_not_json_schema_is_refused_naming_where_and_the_fix(schema):
    model = ScriptedBackend(["{}"])
    with pytest.raises(ConfigurationError) as info:
        call_typed(schema, "hi", model=model)
    message = str(info.value)
    assert "not a valid JSON Schema" in message and "at " in message and "fix the schema" in message
    assert model.requests == []  # nothing was sent


class Out(BaseModel):
    answer: str


@pytest.mark.parametrize("max_tokens", [0, -1])
def test_max_tokens_below_one_is_refused_before_any_call(max_tokens):
    """``max_tokens`` must be positive everywhere (a reply of no tokens cannot hold an answer)."""
    model = ScriptedBackend(['{"answer": "x"}'])
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    for call in (
        lambda: model.generate("hi", max_tokens=max_tokens),
        lambda: call_typed(Out, "hi", model=model, max_tokens=max_tokens),
        lambda: call_typed(schema, "hi", model=model, max_tokens=max_tokens),
        lambda: compound.Predict("question -> answer", model=model, max_tokens=max_tokens),  # refused when made
    ):
        with pytest.raises(InputError, match=f"max_tokens must be positive, got {max_tokens}"):
            call()
    assert model.requests == []


def test_the_server_refuses_max_tokens_0_and_a_bad_schema_with_a_4xx(isolated_home):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from compound.serve.app import create_app
    from compound.serve.keys import KeyStore

    model = ScriptedBackend(['{"a": "x"}'])
    app = create_app([], {"m": model}, KeyStore.at(isolated_home / "serve.sqlite"), ui=False)
    with TestClient(app) as client:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        zero = client.post("/v1/chat/completions", json={**body, "max_tokens": 0})
        assert zero.status_code == 422 and "max_tokens" in zero.json()["error"]["message"]
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "required": 5}}}
        bad = client.post("/v1/chat/completions", json={**body, "response_format": fmt})
        assert bad.status_code == 400
        assert "not a valid JSON Schema" in bad.json()["error"]["message"]
        assert "required" in bad.json()["error"]["message"]
    assert model.requests == []
