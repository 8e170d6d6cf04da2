"""Usage accounting: what each call cost, added up per step and per run.

Every call's ``Usage`` is recorded into all trackers active in the current context, split into
*physical* usage (work actually computed) and *cached* usage (work served from the cache, which cost
nothing this time), as LOTUS does.

In-process work (llama.cpp on its native threads, an embedding model, a classifier) is timed with the
process-wide CPU clock, which counts every thread. Two such measurements that overlap in time would each
count the other's work, so ``process_cpu`` lets one run at a time per process: each CPU second is
counted once, whatever the concurrency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any


@dataclass(slots=True)
class Usage:
    """The cost of one call, or a sum of calls."""

    calls: int = 0  # model calls (requests sent to a backend)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cost_usd: float = 0.0
    energy_j: float = 0.0
    energy_estimated: bool = False  # True when any joule in the sum was estimated, not measured
    unconstrained: int = 0  # calls that asked for a schema or grammar the server could not enforce
    local: int = 0  # blocks of local work (embeddings, a student's training or predictions): not model calls

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        out = Usage()
        out.add(self)
        out.add(other)
        return out

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.wall_s += other.wall_s
        self.cpu_s += other.cpu_s
        self.cost_usd += other.cost_usd
        self.energy_j += other.energy_j
        self.energy_estimated = self.energy_estimated or other.energy_estimated
        self.unconstrained += other.unconstrained
        self.local += other.local

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "cost_usd": self.cost_usd,
            "energy_j": self.energy_j,
            "energy_estimated": self.energy_estimated,
            "unconstrained": self.unconstrained,
            "local": self.local,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Usage:
        return cls(**{k: v for k, v in d.items() if k in _USAGE_FIELDS})

    @classmethod
    def sum_dicts(cls, ds: list[dict[str, Any]]) -> Usage:
        """The sum of many usages given as dicts (``to_dict``'s), added in order as ``add`` would, without
        a ``Usage`` per item (a cached re-run adds one per row). A value that does not add raises
        ``TypeError``."""
        total = cls()
        for name in _SUMMED:
            setattr(total, name, sum([d.get(name, 0) for d in ds], getattr(total, name)))
        total.energy_estimated = any(d.get("energy_estimated", False) for d in ds)
        return total


def sum_usage(usages: Iterable[Usage]) -> Usage:
    """The sum of many usages (of generations, candidates, rows)."""
    total = Usage()
    for u in usages:
        total.add(u)
    return total


_USAGE_FIELDS = frozenset(f.name for f in fields(Usage))
#: the fields that add up (``energy_estimated`` is an "any")
_SUMMED = tuple(f.name for f in fields(Usage) if f.name != "energy_estimated")


class UsageTracker:
    """Adds up usage, physical and cached apart. Thread-safe."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.physical = Usage()
        self.cached = Usage()
        self._lock = threading.Lock()

    def record(self, usage: Usage, cached: bool) -> None:
        with self._lock:
            (self.cached if cached else self.physical).add(usage)

    @property
    def total(self) -> Usage:
        """Physical plus cached: what the work would have cost with no cache."""
        return self.physical + self.cached

    def to_dict(self) -> dict[str, Any]:
        return {"physical": self.physical.to_dict(), "cached": self.cached.to_dict()}


_TRACKERS: ContextVar[tuple[UsageTracker, ...]] = ContextVar("compound_usage_trackers", default=())


def active_trackers() -> tuple[UsageTracker, ...]:
    return _TRACKERS.get()


@contextmanager
def track_usage(name: str = "") -> Iterator[UsageTracker]:
    """Count the usage of every call made inside the block (nested blocks each count their own)."""
    tracker = UsageTracker(name)
    token = _TRACKERS.set(_TRACKERS.get() + (tracker,))
    try:
        yield tracker
    finally:
        _TRACKERS.reset(token)


_PROCESS_CLOCK = threading.RLock()


@contextmanager
def process_cpu() -> Iterator[list[float]]:
    """Time in-process work: yields a list that holds ``[wall_s, cpu_s]`` once the block ends.

    Measurements with the process clock are serialized (see the module doc), so concurrent rows never
    count each other's CPU; the work itself is what is serialized, which costs nothing on a machine whose
    cores the measured work already fills."""
    spent = [0.0, 0.0]
    with _PROCESS_CLOCK:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield spent
        finally:
            spent[0], spent[1] = time.perf_counter() - t0, time.process_time() - c0


_IN_LOCAL: ContextVar[bool] = ContextVar("compound_in_local_work", default=False)


@contextmanager
def local_work() -> Iterator[list[float]]:
    """Time in-process work done outside any backend (an embedding, a classifier) with ``process_cpu`` and
    count it, as one block of local work (``Usage.local``, apart from model calls), in every active tracker when the block ends (also when it fails: the CPU was
    spent). Blocks nest: only the outermost one measures and counts, so no CPU second is counted twice."""
    nested = _IN_LOCAL.get()
    spent = [0.0, 0.0]
    token = _IN_LOCAL.set(True)
    try:
        with process_cpu() as measured:  # re-entrant: a nested block measures its own part too
            spent = measured
            yield measured
    finally:
        _IN_LOCAL.reset(token)
        if not nested:
            _record_local(spent)


def _record_local(spent: list[float]) -> None:
    from compound.core.settings import get_settings

    usage = Usage(
        local=1,
        wall_s=spent[0],
        cpu_s=spent[1],
        energy_j=spent[1] * get_settings().watts_per_core,
        energy_estimated=True,
    )
    for t in active_trackers():
        t.record(usage, cached=False)
