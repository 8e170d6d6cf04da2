"""A server in a background thread: ``with BackgroundServer(app) as url:`` serves ``app`` until the block ends.

It runs uvicorn on 127.0.0.1 (a free port unless one is given) in a daemon thread; entering the block waits
until the server accepts connections (at most 20 s, else ``RuntimeError``), leaving it asks the server to
stop and waits for the thread. Tests, benchmarks and notebooks use it; ``compound serve`` runs the same app
in the foreground.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class BackgroundServer:
    """``with BackgroundServer(app) as url:`` serves ``app`` on 127.0.0.1 (a free port) until the block ends."""

    def __init__(self, app: Any, port: int = 0, **config: Any) -> None:
        import uvicorn

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **config)
        )
        self.thread = threading.Thread(target=self.server.run, name="compound-serve", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)


__all__ = ["BackgroundServer"]
