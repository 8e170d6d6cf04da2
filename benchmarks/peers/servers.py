"""One OpenAI-compatible llama.cpp server per embedded model on loopback, each behind a counting proxy.

``python -m llama_cpp.server`` (llama-cpp-python's ``[server]`` extra) serves one GGUF file with
``n_threads=2``, its prompt cache off (its default) and the model alias the peers ask for. Every peer talks
to the proxy, never to the server directly; the proxy forwards each request unchanged and counts, from the
server's own replies, the completion requests and their prompt and completion tokens
(``GET /_peers/stats``). It runs in threads of the runner's process, apart from the measured sides.

A server started with ``logits_all`` computes the logits of every prompt token, which token logprobs
need (LOTUS's helper-model cascade) and which adds to the cost of every prompt token; the
runner starts such a server only for the cascade task, apart from the plain one the other tasks use.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STATS_PATH = "/_peers/stats"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingProxy:
    """Forwards HTTP requests to ``upstream_port`` and counts completions and their tokens."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.counts = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            upstream_server = ""

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def version_string(self) -> str:  # say what the server is, as the server itself does
                return self.upstream_server or super().version_string()

            def do_GET(self) -> None:
                if self.path == STATS_PATH:
                    with proxy.lock:
                        self._reply(200, "application/json", json.dumps(proxy.counts).encode())
                else:
                    self._forward(None)

            def do_POST(self) -> None:
                self._forward(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _forward(self, body: bytes | None) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=900)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.upstream_server = resp.getheader("Server") or ""
                if body is not None and self.path.rstrip("/").endswith("completions"):
                    proxy.count(data)
                self._reply(resp.status, resp.getheader("Content-Type") or "application/json", data)

            def _reply(self, status: int, ctype: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self, data: bytes) -> None:
        try:
            usage = json.loads(data).get("usage") or {}
        except ValueError:
            usage = {}
        with self.lock:
            self.counts["calls"] += 1
            self.counts["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self.counts["completion_tokens"] += int(usage.get("completion_tokens") or 0)

    def close(self) -> None:
        self.httpd.shutdown()


class ModelServer:
    """``python -m llama_cpp.server`` for one GGUF file, and its counting proxy."""

    def __init__(self, alias: str, path: Path, *, logits_all: bool = False, n_ctx: int = 4096) -> None:
        self.alias = alias
        port = free_port()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", alias]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", "2", "--n_threads_batch", "2"]
        cmd += ["--n_ctx", str(n_ctx), "--logits_all", str(logits_all), "--verbose", "False"]
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"peers-{alias}-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait(port)
        self.proxy = CountingProxy(port)

    def _wait(self, port: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(
                    f"the {self.alias} model server exited ({self.process.returncode}):\n{self.log.read()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"the {self.alias} model server did not answer within {timeout_s:.0f} s")

    def describe(self) -> dict[str, Any]:
        """What a side needs: where to send requests, which pid to meter, where the counts are."""
        base = f"http://127.0.0.1:{self.proxy.port}"
        return {"model": self.alias, "base_url": f"{base}/v1", "pid": self.process.pid, "stats_url": base + STATS_PATH}

    def close(self) -> None:
        self.proxy.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
