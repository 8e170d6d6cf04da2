"""The audit trail: every run, step and model call is a span stored in SQLite.

A span knows its run and its parent, so a run reads back as a tree. Spans are written when they end,
in the same transaction-free, WAL-journalled way as the cache (one small insert per span).

Finished spans go to every *sink* (anything with ``write(span)``): the SQLite trace store always (when
tracing is on), and an OpenTelemetry exporter beside it when an OTLP endpoint is set
(``compound.configure(otlp_endpoint=...)`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``; see ``store/otel.py``).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compound.core.settings import get_settings
from compound.core.usage import UsageTracker, track_usage
from compound.store.sqlite import SQLiteStore

#: span ids come from a generator of compound's own, seeded from the OS and re-seeded in a forked child,
#: so a program's ``random.seed(...)`` can never make two runs reuse ids
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def new_id() -> str:
    """64 random bits in hex, as the first half of a uuid4 gave, without a system call per span (an id
    needs uniqueness, not secrecy)."""
    return f"{_ids.getrandbits(64):016x}"


@dataclass(slots=True)
class Span:
    kind: str  # run | step | llm | tool | permission | validation | ...
    name: str
    id: str = field(default_factory=new_id)
    run_id: str | None = None
    parent_id: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    status: str = "ok"
    attrs: dict[str, Any] = field(default_factory=dict)
    usage: UsageTracker | None = None

    def row(self) -> tuple:
        attrs = dict(self.attrs)
        if self.usage is not None:
            attrs["usage"] = self.usage.to_dict()
        return (
            self.id,
            self.run_id,
            self.parent_id,
            self.kind,
            self.name,
            self.started,
            self.ended,
            self.status,
            _encode_attrs(attrs),
        )


def _json_default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "to_dict"):
        return o.to_dict()
    try:
        return float(o)
    except (TypeError, ValueError):
        return repr(o)


#: ``json.dumps(attrs, default=_json_default)`` without building an encoder per span (``json.dumps``
#: reuses its own only when called with no options)
_encode_attrs = json.JSONEncoder(default=_json_default).encode


class TraceStore(SQLiteStore):
    KIND = "trace store"
    VERSION = 1
    SCHEMA = """
    CREATE TABLE spans (
        id TEXT PRIMARY KEY, run_id TEXT, parent_id TEXT, kind TEXT NOT NULL, name TEXT NOT NULL,
        started REAL NOT NULL, ended REAL, status TEXT NOT NULL, attrs TEXT NOT NULL);
    CREATE INDEX spans_run ON spans(run_id);
    CREATE INDEX spans_started ON spans(started)
    """

    def write(self, span: Span) -> None:
        """Queue a finished span; the writer thread serializes and commits it."""
        self.writer.put("INSERT OR REPLACE INTO spans VALUES (?,?,?,?,?,?,?,?,?)", span.row)

    def _rows(self, sql: str, args: tuple = ()) -> list[dict[str, Any]]:
        cur = self.read().execute(sql, args)
        names = [d[0] for d in cur.description]
        out = []
        for r in cur.fetchall():
            d = dict(zip(names, r, strict=False))
            d["attrs"] = self.decode(d["attrs"], "spans", {"id": d.get("id")}, "attrs")
            out.append(d)
        return out

    def list(self, limit: int = 20, kind: str | None = None) -> list[dict[str, Any]]:
        if kind:
            return self._rows("SELECT * FROM spans WHERE kind=? ORDER BY started DESC LIMIT ?", (kind, limit))
        return self._rows("SELECT * FROM spans WHERE kind IN ('run','llm') ORDER BY started DESC LIMIT ?", (limit,))

    def get(self, span_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM spans WHERE id=? OR id LIKE ? LIMIT 2", (span_id, span_id + "%"))
        return rows[0] if len(rows) == 1 else None

    def run_spans(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM spans WHERE run_id=? OR id=? ORDER BY started", (run_id, run_id))

    def all(self) -> Iterator[dict[str, Any]]:
        yield from self._rows("SELECT * FROM spans ORDER BY started")


def trace_store(path: Path | None = None) -> TraceStore:
    return TraceStore.at(path or get_settings().trace_path)


_CURRENT: ContextVar[Span | None] = ContextVar("compound_current_span", default=None)


def current_span() -> Span | None:
    return _CURRENT.get()


def child_span(kind: str, name: str, **attrs: Any) -> Span:
    """A span whose parent and run are taken from the current context (not yet entered or written)."""
    parent = _CURRENT.get()
    if parent is None:
        return Span(kind, name, attrs=attrs)
    return Span(kind, name, run_id=parent.run_id or parent.id, parent_id=parent.id, attrs=attrs)


class SpanSink(Protocol):
    """Where finished spans go. ``write`` must not block on I/O (queue it)."""

    def write(self, span: Span) -> None: ...


#: the settings last asked for their sinks, and those sinks (every span asks)
_last_sinks: tuple[Any, tuple[SpanSink, ...]] | None = None


def sinks() -> tuple[SpanSink, ...]:
    """The sinks of the current settings: SQLite when tracing is on, plus OTLP when an endpoint is set.
    Settings are frozen and a store is never let go, so the sinks of the settings last asked are kept."""
    global _last_sinks
    settings = get_settings()
    last = _last_sinks
    if last is not None and last[0] is settings:
        return last[1]
    out: list[SpanSink] = []
    if settings.trace:
        out.append(trace_store(settings.trace_path))
        if settings.otlp_endpoint:
            from compound.store.otel import otel_sink

            out.append(otel_sink(settings.otlp_endpoint))
    found = tuple(out)
    _last_sinks = (settings, found)
    return found


def record(span: Span) -> None:
    """Write a finished span to every sink (none when tracing is off)."""
    for sink in sinks():
        sink.write(span)


@contextmanager
def span(kind: str, name: str, **attrs: Any) -> Iterator[Span]:
    """Open a span (and a usage tracker for it) around a block; it is written when the block ends."""
    s = child_span(kind, name, **attrs)
    if s.run_id is None and kind == "run":
        s.run_id = s.id
    token = _CURRENT.set(s)
    try:
        with track_usage(name) as tracker:
            s.usage = tracker
            yield s
    except BaseException as e:
        s.status = "error"
        s.attrs["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        _CURRENT.reset(token)
        s.ended = time.time()
        record(s)


def start_run(name: str = "run", **attrs: Any) -> Any:
    """Open a run: a trace span that groups every call and step inside it under one run id.

    Args:
        name: the run's name in ``compound traces list``.
        **attrs: extra attributes recorded on the run's span.

    Returns:
        A context manager yielding the run's ``Span``; ``span.usage`` adds up everything inside.

    ``with compound.start_run("name") as r: ...``
    """
    return span("run", name, **attrs)


#: the old name, kept for one release
run = start_run
