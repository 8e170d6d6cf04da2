"""A live server on loopback over scripted backends with realistic latency, and its keys."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "fixtures"))
from serve_programs import LATENCY, make_programs  # noqa: E402

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from compound.models.scripted import ScriptedBackend  # noqa: E402
from compound.serve.app import Limits, create_app  # noqa: E402
from compound.serve.background import BackgroundServer  # noqa: E402
from compound.serve.keys import KeyStore, new_key  # noqa: E402


@pytest.fixture
def keys(isolated_home):
    store = KeyStore(isolated_home / "serve.sqlite")
    alice, alice_secret = new_key("alice")
    capped, capped_secret = new_key("capped", calls=3)
    store.set_keys([alice, capped])
    return store, {"alice": alice_secret, "capped": capped_secret}


@pytest.fixture
def server(keys, tmp_path):
    store, secrets = keys
    echo = ScriptedBackend(model="echo", latency_s=LATENCY)
    app = create_app(make_programs(), {"echo": echo}, store, Limits(max_body_bytes=20_000), reports=[str(tmp_path)])
    with BackgroundServer(app) as url:
        yield url, secrets
