"""Measuring one side of a comparison: CPU of the whole process tree, wall time, calls and tokens.

Standard library only, so every side imports it, whichever virtual environment it runs in (LOTUS's has no
compound). A ``Meter`` takes snapshots; the difference of two is a section's cost:

- ``client_cpu_s``: user + system CPU of the side's own process and its waited-for children (``os.times``);
- per model server: its process's user + system CPU (``/proc/PID/stat``), and the calls, prompt and
  completion tokens counted by the loopback proxy in front of it (``servers.CountingProxy``);
- ``wall_s``: ``time.perf_counter``.

The proxies themselves run in the runner's process and are not counted (they are measuring apparatus,
the same for every side).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Meter:
    """Snapshots of this process's and the model servers' costs. ``servers``: name -> {pid, stats_url}."""

    def __init__(self, servers: dict[str, dict[str, Any]]) -> None:
        self.servers = servers

    def snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {"wall_s": time.perf_counter(), "client_cpu_s": own_cpu_s(), "servers": {}}
        for name, s in self.servers.items():
            with urllib.request.urlopen(s["stats_url"], timeout=10) as r:
                counts = json.loads(r.read())
            snap["servers"][name] = {"cpu_s": process_cpu_s(s["pid"]), **counts}
        return snap

    def measure(self, fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Run ``fn`` and return its result and its cost (``diff`` of the snapshots around it)."""
        before = self.snapshot()
        result = fn(*args, **kwargs)
        return result, diff(before, self.snapshot())


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What happened between two snapshots, with totals over the servers."""
    servers = {name: {k: after["servers"][name][k] - v for k, v in b.items()} for name, b in before["servers"].items()}
    out: dict[str, Any] = {
        "wall_s": after["wall_s"] - before["wall_s"],
        "client_cpu_s": after["client_cpu_s"] - before["client_cpu_s"],
        "servers": servers,
    }
    out["cpu_s"] = out["client_cpu_s"] + sum(s["cpu_s"] for s in servers.values())
    for key in ("calls", "prompt_tokens", "completion_tokens"):
        out[key] = sum(s[key] for s in servers.values())
    out["tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    return out


def side_main(tasks: dict[str, Any]) -> None:
    """Entry point of a side: ``python side_X.py SPEC.json OUT.json``; runs ``tasks[spec["task"]](spec, meter)``.

    The side's start-up (interpreter, imports) is reported apart as ``setup_cpu_s``: it is a one-time cost
    of the tool, not of the task."""
    import sys

    spec = json.loads(open(sys.argv[1]).read())
    meter = Meter(spec["servers"])
    setup_cpu_s = own_cpu_s()
    results = tasks[spec["task"]](spec, meter)
    with open(sys.argv[2], "w") as f:
        json.dump({"setup_cpu_s": setup_cpu_s, "results": results}, f, default=str)
