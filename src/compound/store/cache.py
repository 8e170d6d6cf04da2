"""The response cache. The key covers backend, model, messages, parameters and the sample index,
so N samples of one prompt are N entries. Hits are decoded from stored JSON: a fresh object every time,
never one shared with another caller. A stored entry that does not decode is skipped (a miss), moved to
``cache.sqlite.damaged-rows.jsonl`` and reported with a warning."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from compound.core.errors import StoreError
from compound.core.types import Generation
from compound.store.sqlite import SQLiteStore

#: ``json.dumps(..., separators=(",", ":"), default=str)`` without building an encoder per call
_encode_key = json.JSONEncoder(separators=(",", ":"), default=str).encode


def cache_key(model_id: str, request_fields: dict[str, Any]) -> str:
    """sha256 of the sorted JSON of ``[model_id, request_fields]``. ``request_fields`` comes in canonical
    order (``Request.key_fields``: every dict's keys sorted), so it is encoded as it stands: the same
    text as with ``sort_keys``, at half the cost, and the same keys as caches already hold."""
    blob = _encode_key([model_id, request_fields])
    return hashlib.sha256(blob.encode()).hexdigest()


_PUT = "INSERT OR REPLACE INTO responses VALUES (?,?,?,?)"


class ResponseCache(SQLiteStore):
    KIND = "cache"
    QUARANTINE = True  # only derived data: a damaged file is moved aside and the run goes on
    VERSION = 1
    SCHEMA = """
    CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, created REAL NOT NULL, generation TEXT NOT NULL)
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._pending: dict[str, str] = {}  # written by put, not yet committed by the writer thread

    def _written(self, batch: list) -> None:
        for _, params in batch:
            if self._pending.get(params[0]) is params[3]:
                del self._pending[params[0]]

    def get(self, key: str) -> Generation | None:
        blob = self._pending.get(key)
        if blob is None:
            conn = self.connect()
            try:
                row = conn.execute("SELECT generation FROM responses WHERE key=?", (key,)).fetchone()
            except StoreError as e:  # damage found past the first page: move the file aside, count a miss
                if not e.damaged:
                    raise
                self.quarantine(e, self._local.generation)
                return None
            if row is None:
                return None
            blob = row[0]
            try:
                return Generation.from_dict(self.decode(blob, "responses", {"key": key}, "generation"))
            except (StoreError, KeyError, TypeError, ValueError) as e:  # a damaged row: skip it, count a miss
                error = (
                    e if isinstance(e, StoreError) else self.bad_row("responses", {"key": key}, "generation", repr(e))
                )
                self.skip_row("responses", {"key": key}, error)
                return None
        return Generation.from_dict(json.loads(blob))

    def put(self, key: str, generation: Generation) -> None:
        blob = json.dumps(generation.to_dict())  # serialized now: later changes to the object are not cached
        self._pending[key] = blob
        self.writer.put(_PUT, (key, generation.model, time.time(), blob))

    def __len__(self) -> int:
        return self.read().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> None:
        self.read().execute("DELETE FROM responses")


def cache_at(path: Path) -> ResponseCache:
    return ResponseCache.at(path)
