"""The installed console script: `compound keys add` and `compound serve` in a subprocess."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

COMPOUND = shutil.which("compound") or str(Path(sys.prefix) / "bin" / "compound")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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

    port = free_port()
    proc = subprocess.Popen(
        [COMPOUND, "serve", "write_email", "-m", "scripted", "--keys", str(keys), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{url}/healthz").json()["programs"] == ["write_email"]
        body = {"model": "scripted", "messages": [{"role": "user", "content": "ping"}]}
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "ping"
        again = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})
        assert again.status_code == 429 and "Retry-After" in again.headers
        assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
        assert "/v1/programs/write_email/run" in httpx.get(f"{url}/openapi.json").json()["paths"]
    finally:
        proc.terminate()
        proc.wait(10)
