"""API keys and their daily budgets.

Guarantees:
- Keys are never stored in the clear: a key file holds, per key, a random salt and the scrypt hash
  (``hashlib.scrypt``, n=2**14, r=8, p=1) of the secret. Keys from the environment
  (``COMPOUND_API_KEYS="name:secret,..."``) are hashed when read and the secret is not kept. A verified
  secret is remembered in memory by its SHA-256, so scrypt runs once per key and process, not per request.
- Each key has limits per UTC day: API calls, tokens, US dollars and joules. Calls are counted when a
  request is admitted (atomically); tokens, money and energy are enforced by one shared
  ``compound.Budget`` per key and day, whose reservations are atomic across concurrent requests, so no
  number of requests in flight can push a key past a limit.
- Usage per key and day is persisted in SQLite (``serve.sqlite`` in the compound home) and read back on
  start, so a restart does not reset a day's budget.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compound.core.budget import Budget
from compound.core.errors import ConfigurationError
from compound.core.usage import Usage
from compound.serve.programs import RequestError
from compound.store.sqlite import SQLiteStore

FORMAT = "compound.keys"
LIMIT_NAMES = ("calls", "tokens", "cost_usd", "energy_j")


def hash_secret(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


@dataclass
class ApiKey:
    name: str
    salt: str
    hash: str
    limits: dict[str, float | None] = field(default_factory=dict)

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret, bytes.fromhex(self.salt)), self.hash)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "salt": self.salt, "hash": self.hash, "limits": self.limits}


def new_key(name: str, secret: str | None = None, **limits: float | None) -> tuple[ApiKey, str]:
    """A key record (salt and hash only) and its secret, shown once."""
    secret = secret or "sk-compound-" + secrets.token_urlsafe(24)
    salt = os.urandom(16)
    return ApiKey(name, salt.hex(), hash_secret(secret, salt), _limits(limits)), secret


def _limits(limits: dict[str, Any]) -> dict[str, float | None]:
    unknown = set(limits) - set(LIMIT_NAMES)
    if unknown:
        raise ConfigurationError(f"unknown key limit(s) {sorted(unknown)}; the limits are {list(LIMIT_NAMES)}")
    return {k: limits.get(k) for k in LIMIT_NAMES}


def read_key_file(path: Path) -> list[ApiKey]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigurationError(f"cannot read key file {path}: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigurationError(f'{path} is not a compound key file (no "format": "{FORMAT}")')
    return [ApiKey(k["name"], k["salt"], k["hash"], _limits(k.get("limits", {}))) for k in doc["keys"]]


def write_key_file(path: Path, keys: list[ApiKey]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT, "version": 1, "keys": [k.to_dict() for k in keys]}, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def env_keys(value: str | None, limits: dict[str, float | None]) -> list[ApiKey]:
    out = []
    for item in (value or "").split(","):
        name, sep, secret = item.strip().partition(":")
        if not item.strip():
            continue
        if not sep or not secret:
            raise ConfigurationError("COMPOUND_API_KEYS must look like 'name:secret,name2:secret2'")
        out.append(new_key(name, secret, **limits)[0])
    return out


def seconds_to_midnight() -> int:
    now = dt.datetime.now(dt.UTC)
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()) + 1)


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


class KeyStore(SQLiteStore):
    """Verifies keys and keeps each key's daily usage."""

    KIND = "serve key store"
    LINGER_S = 0.005  # each key's usage of the day is no derived data: keep the window a kill loses small
    VERSION = 1
    SCHEMA = """
    CREATE TABLE key_usage (key TEXT NOT NULL, day TEXT NOT NULL, calls INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
        energy_j REAL NOT NULL, PRIMARY KEY (key, day))
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.keys: dict[str, ApiKey] = {}
        self._verified: dict[str, str] = {}  # sha256(secret) -> key name (memory only)
        self._budgets: dict[tuple[str, str], tuple[Budget, list[int]]] = {}
        self._lock = threading.Lock()

    def set_keys(self, keys: list[ApiKey]) -> None:
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"API key names must be unique; got {names}")
        self.keys = {k.name: k for k in keys}
        self._verified.clear()

    @property
    def open(self) -> bool:
        """No keys configured: every request is admitted under the name 'anonymous', without limits."""
        return not self.keys

    def authorize(self, header: str | None) -> ApiKey:
        if self.open:
            return ApiKey("anonymous", "", "", {})
        if not header or not header.lower().startswith("bearer ") or not header[7:].strip():
            raise RequestError(401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
        secret = header[7:].strip()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        name = self._verified.get(digest)
        if name is None:
            name = next((k.name for k in self.keys.values() if k.matches(secret)), None)
            if name is None:
                raise RequestError(401, "invalid API key", "invalid_api_key")
            self._verified[digest] = name
        return self.keys[name]

    def _today(self, key: ApiKey) -> tuple[Budget, list[int]]:
        day = today()
        entry = self._budgets.get((key.name, day))
        if entry is None:
            lim = key.limits
            b = Budget(
                tokens=_int(lim.get("tokens")),
                cost_usd=lim.get("cost_usd"),
                energy_j=lim.get("energy_j"),
                threads=False,
            )
            row = (
                self.read()
                .execute(
                    "SELECT calls, prompt_tokens, completion_tokens, cost_usd, energy_j FROM key_usage WHERE key=? AND day=?",
                    (key.name, day),
                )
                .fetchone()
            )
            calls = [0]
            if row:
                calls[0] = row[0]
                b.used = Usage(prompt_tokens=row[1], completion_tokens=row[2], cost_usd=row[3], energy_j=row[4])
            entry = self._budgets[(key.name, day)] = (b, calls)
        return entry

    def admit(self, key: ApiKey) -> Budget:
        """Count one call against the key's day (or refuse with 429) and return its shared budget."""
        with self._lock:
            budget, calls = self._today(key)
            limit = key.limits.get("calls")
            if limit is not None and calls[0] + 1 > limit:
                raise budget_refusal(f"API key {key.name!r} has used its {limit:g} calls for today")
            for name in ("tokens", "cost_usd", "energy_j"):
                lim = budget.limits[name]
                used = {"tokens": budget.used.total_tokens, "cost_usd": budget.used.cost_usd}.get(
                    name, budget.used.energy_j
                )
                if lim is not None and used >= lim:
                    raise budget_refusal(f"API key {key.name!r} has used its {name} budget for today ({lim:g})")
            calls[0] += 1
        self._persist(key.name, Usage(calls=1))
        return budget

    def settle(self, key: ApiKey, usage: Usage) -> None:
        """Persist what a request physically used (the shared budget already counted it)."""
        self._persist(key.name, _no_calls(usage))

    def _persist(self, name: str, u: Usage) -> None:
        self.writer.put(
            "INSERT INTO key_usage VALUES (?,?,?,?,?,?,?) ON CONFLICT(key, day) DO UPDATE SET "
            "calls=calls+excluded.calls, prompt_tokens=prompt_tokens+excluded.prompt_tokens, "
            "completion_tokens=completion_tokens+excluded.completion_tokens, cost_usd=cost_usd+excluded.cost_usd, "
            "energy_j=energy_j+excluded.energy_j",
            (name, today(), u.calls, u.prompt_tokens, u.completion_tokens, u.cost_usd, u.energy_j),
        )

    def usage_today(self, name: str) -> dict[str, Any] | None:
        row = (
            self.read()
            .execute(
                "SELECT calls, prompt_tokens, completion_tokens, cost_usd, energy_j FROM key_usage WHERE key=? AND day=?",
                (name, today()),
            )
            .fetchone()
        )
        if row is None:
            return None
        return dict(zip(("calls", "prompt_tokens", "completion_tokens", "cost_usd", "energy_j"), row, strict=True))


def _no_calls(usage: Usage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        energy_j=usage.energy_j,
    )


def _int(v: float | None) -> int | None:
    return None if v is None else int(v)


def budget_refusal(message: str) -> RequestError:
    wait = seconds_to_midnight()
    return RequestError(
        429, f"{message}; it resets at 00:00 UTC (in {wait} s)", "budget_exceeded", {"Retry-After": str(wait)}
    )
