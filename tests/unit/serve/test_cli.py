"""The installed console script: `compound keys add`, `compound serve` and `compound ui` in a subprocess."""

import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

COMPOUND = shutil.which("compound") or str(Path(sys.prefix) / "bin" / "compound")


@contextmanager
def running(*args: str):
    """Run ``compound ARGS --port P`` until /healthz answers; yield its URL; stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([COMPOUND, *args, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_keys_add_then_serve(tmp_path, isolated_home):
    keys = tmp_path / "keys.json"
    out = subprocess.run(
        [COMPOUND, "keys", "add", "bob", "--keys", str(keys), "--calls", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = out.stdout.strip()
    assert secret.startswith("sk-compound-") and secret not in keys.read_text()

    with running("serve", "write_email", "-m", "scripted", "--keys", str(keys)) as url:
        assert httpx.get(f"{url}/healthz").json()["programs"] == ["write_email"]
        body = {"model": "scripted", "messages": [{"role": "user", "content": "ping"}]}
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "ping"
        again = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
        assert again.status_code == 429 and "Retry-After" in again.headers
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
        assert "/v1/programs/write_email/run" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_compound_ui_serves_the_pages(tmp_path, isolated_home):
    (tmp_path / "r.json").write_text('{"rows": [{"config": "small", "accuracy": 0.5, "cpu_s": 1.0, "pareto": true}]}')
    with running("ui", "--reports", str(tmp_path)) as url:
        for path in ("/ui/runs", "/ui/jobs", "/ui/reports", "/ui/write", "/ui/reports/r"):
            assert httpx.get(f"{url}{path}").status_code == 200, path
        assert httpx.get(f"{url}/ui/reports/r/plot.png").headers["content-type"] == "image/png"


def test_serve_with_nothing_named_serves_the_installed_embedded_models_and_says_so(isolated_home):
    from compound.models.embedded import installed_models

    if not installed_models():
        import pytest

        pytest.skip("no embedded model is installed here (compound models install smollm2-135m)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([COMPOUND, "serve", "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health["models"] == sorted(installed_models()) and health["programs"] == []
    finally:
        proc.terminate()
        said = proc.communicate(timeout=10)[1]
    assert f"compound serve: programs: none; models: {', '.join(installed_models())}" in said


def test_serve_with_nothing_named_and_no_model_installed_says_how_to_install_one(monkeypatch):
    import pytest

    from compound.cli import serve as serve_cli
    from compound.core.errors import ConfigurationError
    from compound.models import embedded

    monkeypatch.setattr(embedded, "installed_models", lambda: [])
    with pytest.raises(ConfigurationError, match="compound models install smollm2-135m`, or name a program or -m"):
        serve_cli.default_models()
