"""The response cache. The key covers backend, model, messages, parameters and the sample index,
so N samples of one prompt are N entries. Hits are decoded from stored JSON: a fresh object every time,
never one shared with another caller."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from compound.core.types import Generation
from compound.store.sqlite import SQLiteStore


def cache_key(model_id: str, request_fields: dict[str, Any]) -> str:
    blob = json.dumps([model_id, request_fields], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache(SQLiteStore):
    KIND = "cache"
    VERSION = 1
    SCHEMA = """
    CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, created REAL NOT NULL, generation TEXT NOT NULL)
    """

    def get(self, key: str) -> Generation | None:
        row = self.connect().execute("SELECT generation FROM responses WHERE key=?", (key,)).fetchone()
        return None if row is None else Generation.from_dict(json.loads(row[0]))

    def get_many(self, keys: list[str]) -> dict[str, Generation]:
        """Look up many keys in a few queries (for table jobs)."""
        out: dict[str, Generation] = {}
        conn = self.connect()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in conn.execute(f"SELECT key, generation FROM responses WHERE key IN ({marks})", chunk):
                out[key] = Generation.from_dict(json.loads(blob))
        return out

    def put(self, key: str, generation: Generation) -> None:
        self.connect().execute(
            "INSERT OR REPLACE INTO responses VALUES (?,?,?,?)",
            (key, generation.model, time.time(), json.dumps(generation.to_dict())),
        )

    def __len__(self) -> int:
        return self.connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> None:
        self.connect().execute("DELETE FROM responses")


_caches: dict[Path, ResponseCache] = {}


def cache_at(path: Path) -> ResponseCache:
    c = _caches.get(path)
    if c is None:
        c = _caches[path] = ResponseCache(path)
    return c
