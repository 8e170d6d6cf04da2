"""Real OpenAI-compatible servers for a local GGUF model, on loopback, each in a subprocess.

Two kinds, the servers users run most:
- ``"llama-cpp-py"``: llama-cpp-python's ``python -m llama_cpp.server`` (extra ``llama-cpp-python``);
- ``"llama-server"``: llama.cpp's own server through the xllamacpp wheel (``python -m
  compound.models.local_server MODEL PORT``).

Used by the integration tests and ``benchmarks/dialects.py`` to try the ``openai:`` backend against the
real thing. Guarantees of ``local_server``: the server listens on 127.0.0.1 only, with ``threads``
threads and a ``n_ctx`` context; the block starts only once ``/v1/models`` answers 200; a server that
exits or is not ready within ``ready_timeout_s`` raises ``BackendError`` with the tail of its log;
the process is killed and reaped when the block ends, whatever happened in it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compound.core.errors import BackendError, InputError

KINDS = ("llama-cpp-py", "llama-server")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(kind: str, model: Path, port: int, *, threads: int = 2, n_ctx: int = 1024) -> list[str]:
    """The command line that serves ``model`` as ``kind`` on 127.0.0.1:``port``."""
    if kind == "llama-cpp-py":
        flags = {"--model": model, "--host": "127.0.0.1", "--port": port, "--n_ctx": n_ctx}
        flags |= {"--n_threads": threads, "--n_threads_batch": threads}
        return [sys.executable, "-m", "llama_cpp.server", *(str(x) for kv in flags.items() for x in kv)]
    if kind == "llama-server":
        return [sys.executable, "-m", __name__, str(model), str(port), str(threads), str(n_ctx)]
    raise InputError(f"unknown local server kind {kind!r}; known: {', '.join(KINDS)}")


@contextmanager
def local_server(
    kind: str, model: Path, *, log: Path, port: int | None = None, threads: int = 2, ready_timeout_s: float = 90
) -> Iterator[str]:
    """Serve ``model`` as ``kind`` for the block; yields the base URL (``http://127.0.0.1:PORT/v1``)."""
    import httpx

    port = port or free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command(kind, model, port, threads=threads), stdin=subprocess.PIPE, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise BackendError(f"{kind} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BackendError(f"{kind} not ready after {ready_timeout_s} s:\n{log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=30)


def main() -> None:
    """llama.cpp's server through xllamacpp, listening until killed or until its stdin closes."""
    import importlib

    xllamacpp: Any = importlib.import_module("xllamacpp")  # a compiled module without type stubs

    path, port, threads, n_ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = port
    server = xllamacpp.Server(params)  # listens on its own threads
    print(f"listening on {server.listening_address}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
