"""One way to open SQLite here: a connection per thread, WAL journal, and a versioned schema."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from compound.core.errors import ConfigurationError


class SQLiteStore:
    """Base for stores kept in one SQLite file. Subclasses set ``SCHEMA`` and ``VERSION``."""

    SCHEMA: str = ""
    VERSION: int = 1
    KIND: str = "store"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._ready = False

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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
