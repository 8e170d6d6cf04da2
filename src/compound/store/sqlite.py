"""One way to use SQLite here: a connection per thread, WAL journal, a versioned schema, and a
background writer that batches inserts so the hot path of a model call never waits on the disk.

Writes are queued and committed by one writer thread within a few milliseconds, in batches of
whatever accumulated meanwhile. Every read of a store flushes it first, and the queue is flushed at exit, so
readers see every write that was made before they asked.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError

_live_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


class BatchWriter:
    """Runs queued ``(sql, params-or-callable)`` writes on its own thread, one transaction per batch.

    ``put`` appends to a deque and wakes the writer only when it sleeps, so a burst of writes costs the
    hot path one append each (no lock, no thread hand-off per write)."""

    LINGER_S = 0.005

    def __init__(self, connect: Callable[[], sqlite3.Connection], on_written: Callable[[list], None] | None = None):
        self._connect = connect
        self._on_written = on_written
        self._items: deque[tuple[str | None, Any]] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        _live_writers.add(self)

    def put(self, sql: str, params: Any) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="compound-sqlite-writer", daemon=True)
                    self._thread.start()
        self._items.append((sql, params))
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        """Wait until every write queued before this call is committed; raise the first failure."""
        if self._thread is not None:
            done = threading.Event()
            self._items.append((None, done))  # a marker: set once everything before it is written
            self._wake.set()
            done.wait()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(self.LINGER_S)  # let a batch gather: fewer wake-ups and GIL hand-offs on the hot path
            while self._items:
                batch: list[tuple[str, Any]] = []
                markers: list[threading.Event] = []
                while self._items and len(batch) < 1000:
                    sql, params = self._items.popleft()
                    if sql is None:
                        markers.append(params)
                    else:
                        batch.append((sql, params))
                try:
                    if batch:
                        conn = conn or self._connect()
                        self._commit(conn, batch)
                except BaseException as e:  # reported to the next flush, never silently dropped
                    if conn is not None and conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self.error = e
                finally:
                    for marker in markers:
                        marker.set()

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[str, Any]]) -> None:
        by_sql: dict[str, list] = {}
        for sql, params in batch:
            by_sql.setdefault(sql, []).append(params() if callable(params) else params)
        conn.execute("BEGIN")
        for sql, rows in by_sql.items():
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
        if self._on_written is not None:
            self._on_written(batch)


def flush_all() -> None:
    """Commit every queued write of every store (called at exit; call it before moving a store's files)."""
    for w in list(_live_writers):
        w.flush()


@atexit.register
def _flush_at_exit() -> None:
    try:
        flush_all()
    except Exception as e:  # the process is ending: say what was not written, do not hang or hide it
        import sys

        print(f"compound: some cache or trace writes failed at exit: {e}", file=sys.stderr)


class SQLiteStore:
    """Base for stores kept in one SQLite file. Subclasses set ``SCHEMA`` and ``VERSION``."""

    SCHEMA: str = ""
    VERSION: int = 1
    KIND: str = "store"
    _open: dict[tuple[type, str], SQLiteStore] = {}
    _open_lock = threading.Lock()

    @classmethod
    def at(cls, path: Path) -> Any:
        """The one store of this kind for ``path`` in this process (one writer thread per file)."""
        key = (cls, os.fspath(path))  # a str key: hashing a Path re-parses it on every call
        store = cls._open.get(key)
        if store is None:
            with cls._open_lock:
                store = cls._open.get(key)
                if store is None:
                    store = cls._open[key] = cls(path)
        return store

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._ready = False
        self.writer = BatchWriter(self.connect, self._written)

    def _written(self, batch: list) -> None:
        """Called on the writer thread after a batch is committed (subclasses may drop pending state)."""

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            if not self._ready:
                with self._init_lock:
                    self._migrate(conn)
                    self._ready = True
        return conn

    def read(self) -> sqlite3.Connection:
        """A connection for reading, after every queued write has been committed."""
        self.writer.flush()
        return self.connect()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == self.VERSION:
            return
        if version == 0:
            conn.executescript(f"BEGIN; {self.SCHEMA}; PRAGMA user_version={self.VERSION}; COMMIT;")
            return
        raise ConfigurationError(
            f"{self.KIND} file {self.path} has schema version {version}, this compound reads version "
            f"{self.VERSION}. Move the file aside (or upgrade compound) and run again."
        )
