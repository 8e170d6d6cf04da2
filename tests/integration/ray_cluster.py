"""A real multi-process Ray cluster on this machine, for tests: a head (no CPUs: it runs no rows) and worker
nodes started with ``ray start --address``, each with its own CPUs, custom resources and environment.

Each node is a ``ray start --block`` process in a session of its own, so killing that session kills the
node (its raylet and workers) and nothing else: a test kills one node mid-job that way, and ``stop()``
ends every node it started, by process group, also when the test failed. It never runs ``ray stop``,
which would end every Ray process on the machine, other users' included.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",  # a test cluster on 127.0.0.1; no token file written to ~/.ray
            # a lost node is noticed in about two seconds, not thirty
            "RAY_health_check_period_ms": "500",
            "RAY_health_check_failure_threshold": "3",
            "RAY_health_check_initial_delay_ms": "0",
            **(env or {}),
        }
        self.nodes: dict[str, subprocess.Popen] = {}
        self._node_args: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        self.ray_temp = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes

    def _start(self, name: str, args: list[str], env: dict[str, str] | None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 (kept open for the node's life)
        proc = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", *args],
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.nodes[name] = proc
        return proc

    def start_head(self) -> None:
        self._start(
            "head",
            [
                "--head",
                f"--port={self.port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=0",
                "--include-dashboard=false",
                f"--temp-dir={self.ray_temp}",
            ],
            None,
        )
        self.wait_started("head")

    def add_node(
        self, name: str, cpus: int = 1, resources: str = "{}", env: dict[str, str] | None = None, wait: bool = True
    ) -> None:
        self._node_args[name] = (
            [
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={cpus}",
                f"--resources={resources}",
                f"--node-manager-port={free_port()}",
                f"--object-manager-port={free_port()}",
                "--min-worker-port=0",  # any free ports: nodes on one machine must not share a range
                "--max-worker-port=0",
            ],
            env,
        )
        self._start(name, *self._node_args[name])
        if wait:
            self.wait_started(name)

    def wait_started(self, name: str, timeout_s: float = 120.0, tries: int = 2) -> None:
        """Wait until the node says it runs (``ray start`` prints so once its raylet joined the head); a
        worker node that gave up (its start-up deadline, on a loaded machine) is started once more."""
        deadline = time.monotonic() + timeout_s
        log = self.folder / f"{name}.log"
        while time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text(errors="replace"):
                return
            if self.nodes[name].poll() is not None:
                if tries > 1 and name in self._node_args:
                    self._start(name, *self._node_args[name])
                    return self.wait_started(name, timeout_s, tries - 1)
                break
            time.sleep(0.25)
        raise RuntimeError(f"Ray node {name} did not start; see {log}:\n{log.read_text(errors='replace')[-2000:]}")

    def kill(self, name: str) -> None:
        """Kill one node at once (SIGKILL to its whole process group), as a machine that is lost."""
        proc = self.nodes.pop(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop(self) -> None:
        for name in [n for n in self.nodes if n != "head"] + (["head"] if "head" in self.nodes else []):
            proc = self.nodes.pop(name)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except ProcessLookupError:
                continue
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)
        shutil.rmtree(self.ray_temp, ignore_errors=True)
