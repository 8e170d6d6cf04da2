"""Typed calls through ``openai:`` against real local servers on loopback, counting what went over the wire.

Starts llama-cpp-python's ``llama_cpp.server`` and llama.cpp's llama-server (through xllamacpp) on the
135M model, two threads each, one after the other, and runs ``--calls`` typed sentiment calls against each:
once as detected by the probe, once with the server unrecognised (so it is learned from its first refusal).
Every HTTP request the client sends is counted, with its status. Prints a table; ``--json out.json`` writes the rows.

    python benchmarks/dialects.py --calls 10 --json dialects.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Literal

import httpx
from _common import add_smoke, parse
from pydantic import BaseModel

import compound
from compound.core.settings import get_settings
from compound.models import dialects
from compound.models.embedded import get_embedded
from compound.models.local_server import KINDS, local_server

ROOT = Path(__file__).resolve().parents[1]
REVIEWS = [
    "I loved it, wonderful and great!",
    "Awful. I hated every minute.",
    "Great food, lovely staff.",
    "Broken on arrival, a waste of money.",
    "The best purchase this year.",
]


class Sentiment(BaseModel):
    label: Literal["positive", "negative"]


SENT: list[tuple[str, str, int]] = []  # (method, path, status) of every HTTP request the process made


def _count_requests() -> None:
    """Record every request the openai client sends (it rides on httpx.Client), with its status."""
    send = httpx.Client.send

    def counted(self, request, *args, **kw):
        response = send(self, request, *args, **kw)
        SENT.append((request.method, request.url.path, response.status_code))
        return response

    httpx.Client.send = counted


def run(kind: str, url: str, calls: int, unrecognised: bool) -> dict:
    dialects.forget(url)
    if unrecognised:  # as a server that answers no GET would be: only its refusal can tell
        dialects.remember(dialects.default_report(url))
    model = compound.OpenAIBackend("local", base_url=url)
    valid = unconstrained = 0
    constraints = set()
    with compound.context(cache=False):
        for i in range(calls):
            review = REVIEWS[i % len(REVIEWS)]
            try:
                typed = compound.call_typed(
                    Sentiment,
                    f"Review: {review}\nPositive or negative?",
                    model=model,
                    max_tokens=16,
                )
            except compound.CompoundError:
                continue
            valid += 1
            unconstrained += sum(g.usage.unconstrained for g in typed.generations)
            constraints |= {g.meta.get("constraint") for g in typed.generations}
    report = model.dialect()
    return {
        "server": kind,
        "start": "unrecognised" if unrecognised else "probe",
        "calls": calls,
        "valid": valid,
        "dialect": report.dialect,
        "sent_as": ",".join(sorted(c for c in constraints if c)),
        "detected_by": report.detected_by,
        "unconstrained": unconstrained,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--json", type=Path)
    add_smoke(ap)
    args = parse(ap, calls=2)
    _count_requests()
    model = get_embedded(get_settings().small).path(Path(tempfile.mkdtemp()))
    rows = []
    for kind in KINDS:
        with local_server(kind, model, log=Path(tempfile.mkdtemp()) / "server.log", ready_timeout_s=120) as url:
            for unrecognised in (False, True):
                before = len(SENT)
                row = run(kind, url, args.calls, unrecognised)
                sent = SENT[before:]
                chats = [status for method, path, status in sent if method == "POST"]
                row |= {
                    "probe_gets": sum(m == "GET" for m, _, _ in sent),
                    "posts": len(chats),
                }
                row["refused"] = sum(s != 200 for s in chats)
                rows.append(row)
    cols = [
        "server",
        "start",
        "calls",
        "valid",
        "probe_gets",
        "posts",
        "refused",
        "dialect",
        "sent_as",
        "detected_by",
        "unconstrained",
    ]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
