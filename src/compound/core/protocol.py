"""Protocols: call logic written once as a generator, run by a sync or an async driver.

A protocol is a generator that yields *steps* (a request for a model, an HTTP call, seconds to wait) and
receives each step's result; what it returns is the outcome. The logic (repairs, retries, dialect
step-downs) lives in the generator only, so the sync path and the async path cannot drift apart.

Guarantees of ``drive`` and ``adrive``:
- every step goes to the handler, in order, and its result is sent back into the protocol;
- an exception the handler raises whose type is in ``throw`` is thrown into the protocol at the step
  that caused it (the protocol may retry, step down or re-raise); any other exception propagates
  unchanged and the protocol is not resumed;
- the protocol's return value is the driver's return value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

S = TypeVar("S")  # a step
R = TypeVar("R")  # a step's result
T = TypeVar("T")  # the outcome


def drive(
    protocol: Generator[S, R, T],
    handle: Callable[[S], R],
    throw: tuple[type[BaseException], ...] = (),
) -> T:
    """Run ``protocol`` synchronously (no event loop), handing each step to ``handle``."""
    try:
        step = next(protocol)
        while True:
            step = _advance(protocol, handle, step, throw)
    except StopIteration as done:
        return done.value


def _advance(protocol: Generator[S, R, T], handle: Callable[[S], R], step: S, throw: tuple) -> S:
    try:
        result = handle(step)
    except throw as e:
        return protocol.throw(e)
    return protocol.send(result)


async def adrive(
    protocol: Generator[S, R, T],
    handle: Callable[[S], Awaitable[R]],
    throw: tuple[type[BaseException], ...] = (),
) -> T:
    """Run ``protocol`` on the event loop, awaiting ``handle`` for each step."""
    try:
        step = next(protocol)
        while True:
            try:
                result = await handle(step)
            except throw as e:
                step = protocol.throw(e)
                continue
            step = protocol.send(result)
    except StopIteration as done:
        return done.value
