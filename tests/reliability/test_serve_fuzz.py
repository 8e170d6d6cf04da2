"""schemathesis against compound serve's OpenAPI document: generated requests never get a 5xx.

The model behind the server answers a minimal valid instance of whatever JSON schema a request asks
for, so a 5xx could only come from the server itself, not from a model failing a random schema."""

import json
import sys
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis (extra serve-test)")
pytest.importorskip("prometheus_client")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from compound.core.types import Request  # noqa: E402
from compound.models.scripted import ScriptedBackend  # noqa: E402
from compound.serve.app import create_app  # noqa: E402
from compound.serve.keys import KeyStore, new_key  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
from serve_programs import make_programs  # noqa: E402

SECRET = "sk-fuzz-secret"


def minimal(schema: object) -> object:
    """A small instance of a JSON schema (enough for the schemas a request can pass validation with)."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: minimal(props.get(k, {})) for k in schema.get("required", []) if isinstance(k, str)}
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "null": None}.get(kind, {})


def fuzz_model(request: Request) -> str:
    return json.dumps(minimal(request.json_schema)) if request.json_schema is not None else "ok"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz")
    store = KeyStore(home / "serve.sqlite")
    store.set_keys([new_key("fuzz", SECRET)[0]])
    return create_app(make_programs(), {"fuzzy": ScriptedBackend(fuzz_model, model="fuzzy")}, store, ui=False)


def test_no_server_errors(app):
    """Every operation, ``max_examples`` generated requests each (the pytest plugin is not used: it does
    not support this pytest)."""
    from hypothesis import given

    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 6
    seen: dict[int, int] = {}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def check(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {SECRET}"}
            response = case.call_and_validate(checks=[not_a_server_error])
            seen[response.status_code] = seen.get(response.status_code, 0) + 1

        check()
    print(
        f"\nschemathesis: {sum(seen.values())} requests over {len(operations)} operations, statuses {sorted(seen.items())}"
    )
    assert all(code < 500 for code in seen)
