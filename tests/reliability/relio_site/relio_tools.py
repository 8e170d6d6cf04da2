"""Module-level tools for the reliability tests of tools that stop: a blocking tool runs in a spawned
process, which imports it by name from here (this folder is put on ``sys.path`` by the tests)."""

import os
import time

from compound.tools.base import tool


@tool(blocking=True, timeout_s=0.5)
def hang(seconds: float, pid_file: str = "") -> str:
    """Sleep for a while (writing this process's id first)."""
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(seconds)
    return f"slept {seconds}"


def whoami() -> int:
    """This process's id."""
    return os.getpid()


def explode(kind: str) -> str:
    """Fail in the way asked for."""
    if kind == "exit":
        os._exit(7)
    if kind == "system-exit":
        raise SystemExit(3)
    raise ValueError("broken on purpose")


def odd_result() -> object:
    """A result that is not JSON."""
    return {"a set": {1, 2}, "bytes": b"x"}
