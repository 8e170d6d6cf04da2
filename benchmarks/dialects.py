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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel

import compound
from compound.models import dialects
from compound.models.embedded import SMALL, get_embedded

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


def start(kind: str, model: Path, port: int, log: Path) -> subprocess.Popen:
    if kind == "llama-cpp-py":
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
        ]
        cmd += [
            "--port",
            str(port),
            "--n_threads",
            "2",
            "--n_threads_batch",
            "2",
            "--n_ctx",
            "1024",
        ]
    else:
        cmd = [
            sys.executable,
            str(ROOT / "tests" / "fixtures" / "llama_server.py"),
            str(model),
            str(port),
        ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.25)
    proc.kill()
    raise SystemExit(f"{kind} did not start:\n{log.read_text()[-2000:]}")


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
    args = ap.parse_args()
    _count_requests()
    model = get_embedded(SMALL).path(Path(tempfile.mkdtemp()))
    rows = []
    for port, kind in enumerate(("llama-cpp-py", "llama-server"), start=18471):
        log = Path(tempfile.mkdtemp()) / "server.log"
        proc = start(kind, model, port, log)
        try:
            url = f"http://127.0.0.1:{port}/v1"
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
        finally:
            proc.kill()
            proc.wait()
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
