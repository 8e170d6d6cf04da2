"""Requests-per-minute and tokens-per-minute limits for remote servers (token buckets)."""

from __future__ import annotations

import asyncio
import threading
import time


class RateLimiter:
    """Two token buckets, refilled continuously. ``None`` disables a limit."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._req = requests_per_minute or 0.0
        self._tok = tokens_per_minute or 0.0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def _wait_needed(self, tokens: int) -> float:
        """Take capacity if there is enough and return 0, else return seconds to wait."""
        with self._lock:
            now = time.monotonic()
            dt, self._last = now - self._last, now
            wait = 0.0
            if self.rpm:
                self._req = min(self.rpm, self._req + dt * self.rpm / 60)
                if self._req < 1:
                    wait = max(wait, (1 - self._req) * 60 / self.rpm)
            if self.tpm:
                tokens = min(tokens, int(self.tpm))  # a request larger than the bucket waits for a full one
                self._tok = min(self.tpm, self._tok + dt * self.tpm / 60)
                if self._tok < tokens:
                    wait = max(wait, (tokens - self._tok) * 60 / self.tpm)
            if wait == 0.0:
                if self.rpm:
                    self._req -= 1
                if self.tpm:
                    self._tok -= tokens
            return wait

    def acquire(self, tokens: int = 0) -> None:
        while (wait := self._wait_needed(tokens)) > 0:
            time.sleep(wait)

    async def aacquire(self, tokens: int = 0) -> None:
        while (wait := self._wait_needed(tokens)) > 0:
            await asyncio.sleep(wait)
