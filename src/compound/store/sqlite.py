"""One way to use SQLite here: a connection per thread, WAL journal, a versioned schema, and a
background writer that batches inserts so the hot path of a model call never waits on the disk.

Queued writes are committed by one writer thread within the store's ``LINGER_S`` of the first write of
a batch (50 ms for derived data: the response cache, traces, the row cache), in batches of whatever
accumulated meanwhile, one transaction per batch: a burst of small writes (a table job's cache entries and
spans) costs SQLite a few large commits rather than many small ones. Every read of a store flushes it first
(a flush cuts the wait short), and the queue is flushed at exit, so readers see every write that was made
before they asked. A process killed outright loses the queued writes not yet committed (about its last
``LINGER_S`` of them); what must survive a crash (a table job's finished rows and status) is never queued:
it is committed on the caller's thread before the call returns.

A file that cannot be used is never written to and never silently replaced: a damaged file (random
bytes, truncated), a SQLite file holding other tables, a newer schema, a read-only file or a home folder
that is not a writable directory raise ``StoreError`` naming the file and the fix. A store that holds
only derived data (the response cache, ``QUARANTINE = True``) instead moves a damaged or foreign file
aside (``NAME.damaged-TIME``), warns, and starts a new one.

A file that is valid SQLite but holds a damaged row (a JSON value cut short, say) is found when the row is
read (``decode``): a ``StoreError`` names the file, the table, the row and the SQL that deletes it. A store of
derived data instead skips such a row (``skip_row``): it is copied to ``NAME.damaged-rows.jsonl``, deleted,
and a warning says so; the run goes on as if it had never been stored.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import sqlite3
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compound.core.errors import StoreError

_live_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


class BatchWriter:
    """Runs queued ``(sql, params-or-callable)`` writes on its own thread, one transaction per batch.

    ``put`` appends to a deque and wakes the writer only when it sleeps, so a burst of writes costs the
    hot path one append each (no lock, no thread hand-off per write). Once woken, the writer lets a batch
    gather for ``linger_s`` (or until a ``flush`` asks for it) before it commits: larger transactions
    cost SQLite far less per row (each commit rewrites the pages it touched), and the writer wakes less
    often to compete with the hot path for the interpreter."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_written: Callable[[list], None] | None = None,
        linger_s: float = 0.05,
    ):
        self._connect = connect
        self.linger_s = linger_s
        self._on_written = on_written
        self._items: deque[tuple[str | None, Any]] = deque()
        self._wake = threading.Event()
        self._hurry = threading.Event()  # set by flush: commit now, do not let the batch gather
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
            self._hurry.set()
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
            self._hurry.wait(self.linger_s)  # let a batch gather, unless a flush waits for it
            self._hurry.clear()  # (a flush's marker is queued before it sets this: the drain below finds it)
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
                        conn = self._connect()  # the same one each time, unless the file was moved aside
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
    #: how long queued writes may wait to be committed in one batch (a process killed outright loses them)
    LINGER_S: float = 0.05
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
        _check_folder(self.path.parent, self.KIND)
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._ready = False
        self._generation = 0  # bumped when the file is moved aside: every thread then reconnects
        self.writer = BatchWriter(self.connect, self._written, self.LINGER_S)
        self.connect()  # check the file now, on the caller's thread, not later on the writer's

    #: True for stores of derived data only (the cache): a damaged or foreign file is moved aside
    QUARANTINE: bool = False

    def _written(self, batch: list) -> None:
        """Called on the writer thread after a batch is committed (subclasses may drop pending state)."""

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.generation == self._generation:
            return conn
        generation = self._generation
        try:
            return self._open_file()
        except StoreError as e:
            if not (self.QUARANTINE and e.damaged):
                raise
            self.quarantine(e, generation)
            return self._open_file()

    def _open_file(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise StoreError(
                f"the {self.KIND} file {self.path} is a directory. Move it aside, or set COMPOUND_HOME to another "
                "directory.",
                self.path,
            )
        conn = None
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False, factory=_Connection
            )
            conn.store = self
            if not self._ready:
                with self._init_lock:
                    self._migrate(conn)  # checks the file before anything is written to it
                    self._ready = True
            _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("BEGIN IMMEDIATE")  # a write, rolled back: a read-only file is found now, not later
            try:
                conn.execute(f"PRAGMA user_version={self.VERSION}")
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            if conn is not None:
                conn.close()
            raise self.problem(e) from e
        except StoreError:
            if conn is not None:
                conn.close()
            raise
        self._local.conn, self._local.generation = conn, self._generation
        return conn

    def problem(self, error: BaseException) -> StoreError:
        """The ``StoreError`` for a SQLite error on this file, naming the file and the fix."""
        text = str(error).lower()
        if any(m in text for m in ("readonly", "read-only", "unable to open", "permission")):
            return StoreError(
                f"the {self.KIND} file {self.path} cannot be opened for writing ({error}). Make the file and "
                f"its folder writable (chmod u+w {self.path} {self.path.parent}), or set COMPOUND_HOME to a "
                "writable directory.",
                self.path,
            )
        if any(m in text for m in ("not a database", "malformed", "corrupt", "disk i/o", "no such table")):
            return self.damage(str(error))
        return StoreError(f"the {self.KIND} file {self.path} failed: {error}", self.path)

    def damage(self, why: str) -> StoreError:
        return StoreError(
            f"the {self.KIND} file {self.path} is damaged or is not a compound {self.KIND} ({why}). Move it "
            f"aside (mv {self.path} {self.path}.bad) or delete it; compound then starts a new one.",
            self.path,
            damaged=True,
        )

    def decode(self, text: Any, table: str, key: dict[str, Any], column: str, kind: type | None = dict) -> Any:
        """The JSON value ``text`` read from ``column`` of the row of ``table`` whose primary key is ``key``;
        one that does not decode (cut short, not JSON, not a ``kind``) raises ``bad_row``'s ``StoreError``."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError, RecursionError) as e:
            raise self.bad_row(table, key, column, f"{type(e).__name__}: {e}") from None
        if kind is not None and not isinstance(value, kind):
            raise self.bad_row(table, key, column, f"a {kind.__name__} was stored, it holds {type(value).__name__}")
        return value

    def bad_row(self, table: str, key: dict[str, Any], column: str, why: str) -> StoreError:
        """The ``StoreError`` for a row that does not decode: the file, the table, the row and the fix."""
        where = " AND ".join(f"{k}={_sql_literal(v)}" for k, v in key.items())
        return StoreError(
            f"the {self.KIND} file {self.path} holds a damaged row: table {table}, row {where}, column {column} "
            f'does not decode ({why[:200]}). Delete that row (sqlite3 {self.path} "DELETE FROM {table} WHERE '
            f'{where}"), or move the file aside (mv {self.path} {self.path}.bad) to start a new one.',
            self.path,
        )

    def skip_row(self, table: str, key: dict[str, Any], error: StoreError) -> None:
        """For a store of derived data: copy a damaged row to ``NAME.damaged-rows.jsonl``, delete it, warn."""
        where = " AND ".join(f"{k}=?" for k in key)
        conn = self.read()
        row = conn.execute(f"SELECT * FROM {table} WHERE {where}", tuple(key.values())).fetchone()
        aside = self.path.with_name(f"{self.path.name}.damaged-rows.jsonl")
        if row is not None:
            with open(aside, "a", encoding="utf-8") as f:
                f.write(json.dumps({"table": table, "row": [str(v) for v in row]}) + "\n")
            conn.execute(f"DELETE FROM {table} WHERE {where}", tuple(key.values()))
        message = str(error).split(" Delete that row")[0]
        warnings.warn(f"compound: {message}; it was skipped and moved to {aside}.", RuntimeWarning, stacklevel=3)

    def quarantine(self, error: StoreError, generation: int) -> None:
        """Move a damaged or foreign file (and its WAL) aside, warn, and let every thread reconnect."""
        with self._init_lock:
            if generation != self._generation:  # another thread already moved it
                return
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
                self._local.conn = None
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    os.replace(src, f"{aside}{suffix}")
            self._ready = False
            self._generation += 1
        warnings.warn(
            f"compound: {error} It was moved aside to {aside}; a new {self.KIND} was started.",
            RuntimeWarning,
            stacklevel=3,
        )

    def read(self) -> sqlite3.Connection:
        """A connection for reading, after every queued write has been committed."""
        self.writer.flush()
        return self.connect()

    def _create(self, conn: sqlite3.Connection) -> None:
        """Make the tables under the write lock, unless another process made them first; a failure rolls
        back whatever was begun (nothing when the lock itself was refused)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                for statement in filter(str.strip, self.SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={self.VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN")  # one snapshot: another process may be creating the tables right now
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.execute("COMMIT")
        expected = set(re.findall(r"CREATE TABLE (\w+)", self.SCHEMA))
        if version == self.VERSION:
            if not expected <= tables:
                raise self.damage(f"tables {sorted(expected - tables)} are missing")
            return
        if version == 0:
            if tables:  # someone else's SQLite file: never add our tables to it
                raise self.damage(f"it holds other tables: {sorted(tables)[:5]}")
            # several processes may create the file at once (Ray workers sharing a home): one creates the
            # tables under the write lock, the others wait for it (busy timeout) and find them made
            _while_locked(lambda: self._create(conn))
            _wal(conn)
            return self._migrate(conn)
        raise StoreError(
            f"the {self.KIND} file {self.path} has schema version {version}, this compound reads version "
            f"{self.VERSION}. Move the file aside (or upgrade compound) and run again.",
            self.path,
        )


def _wal(conn: sqlite3.Connection) -> None:
    """Put the file in WAL mode (once set, a no-op)."""
    _while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))


def _while_locked(step: Callable[[], Any], timeout_s: float = 30.0) -> None:
    """Run ``step`` again while SQLite answers "locked" or "busy", for at most ``timeout_s``. Creating the
    tables and switching to WAL mode need the new file to themselves, and SQLite answers at once (no busy
    wait) while another process opens it; each step is idempotent (the tables are made once, WAL mode
    once set stays)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            step()
            return
        except (sqlite3.OperationalError, StoreError) as e:  # (a store's connection raises StoreError)
            if not ("locked" in str(e) or "busy" in str(e)) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Connection(sqlite3.Connection):
    """A connection whose SQLite errors on damaged or read-only files become ``StoreError``s naming the file."""

    store: SQLiteStore

    def execute(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        return self._checked(super().execute, args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        return self._checked(super().executemany, args)

    def _checked(self, run: Callable[..., sqlite3.Cursor], args: tuple) -> sqlite3.Cursor:
        try:
            return run(*args)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as e:
            raise self.store.problem(e) from e


def _sql_literal(value: Any) -> str:
    return str(value) if isinstance(value, int | float) else "'" + str(value).replace("'", "''") + "'"


def _check_folder(folder: Path, kind: str) -> None:
    """The folder a store lives in must be (or become) a writable directory."""
    fix = "Set COMPOUND_HOME to a writable directory (or remove what is in the way)."
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(
            f"compound's home {folder} is a file, not a directory, so the {kind} cannot live there. {fix}"
        ) from None
    except OSError as e:
        raise StoreError(f"cannot create compound's home {folder} for the {kind}: {e.strerror or e}. {fix}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"compound's home {folder} is not writable, so the {kind} cannot be kept there. {fix}")
