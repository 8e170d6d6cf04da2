"""The ``openai:`` backend against two real servers on loopback, both serving the 135M model:
llama-cpp-python's ``llama_cpp.server`` and llama.cpp's own llama-server (through the xllamacpp wheel).

Against each: typed calls, a ``compound table classify`` job run by the installed console script, and a
cascade whose last stage is remote. Each server runs in a subprocess with two threads and a small
context, started once per session, waited for with a bounded timeout and always killed.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import httpx
import pandas as pd
import pytest
from pydantic import BaseModel

import compound
from compound.models import dialects
from compound.models.embedded import SMALL, get_embedded
from compound.routing.calibrate import Threshold

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: how each server takes a JSON schema (models.dialects)
STYLE = {"llama-cpp-py": "json_object", "llama-server": "json_schema"}
READY_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(kind: str, model: Path, port: int) -> list[str]:
    if kind == "llama-cpp-py":
        pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "2",
            "--n_threads_batch",
            "2",
            "--n_ctx",
            "1024",
        ]
    pytest.importorskip("xllamacpp", reason="needs the xllamacpp wheel")
    return [sys.executable, str(FIXTURES / "llama_server.py"), str(model), str(port)]


@pytest.fixture(scope="session", params=sorted(STYLE))
def server(request, tmp_path_factory):
    """(kind, base URL) of a running server; killed at the end whatever happened."""
    kind = request.param
    if not get_embedded(SMALL).installed():
        pytest.fail(f"the embedded model is not installed: compound models install {SMALL}")
    model = get_embedded(SMALL).path(tmp_path_factory.mktemp("models"))
    port = _free_port()
    log = tmp_path_factory.mktemp(kind) / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(_command(kind, model, port), stdin=subprocess.PIPE, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{kind} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{kind} not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-2000:]}")
            time.sleep(0.25)
        yield kind, url
    finally:
        proc.kill()
        proc.wait(timeout=30)
        dialects.forget(url)


class Review(BaseModel):
    row: str


class Sentiment(BaseModel):
    label: Literal["positive", "negative"]


REVIEWS = [
    "I loved it, wonderful and great!",
    "Awful. I hated every minute, terrible.",
    "Great food, lovely staff.",
    "Broken on arrival, a terrible waste of money.",
]


def test_typed_calls_use_the_servers_dialect(server):
    kind, url = server
    model = compound.OpenAIBackend("local", base_url=url)
    for review in REVIEWS[:1]:
        typed = compound.call_typed(
            Sentiment, f"Review: {review}\nIs it positive or negative?", model=model, max_tokens=24
        )
        assert typed.value.label in ("positive", "negative")
        first = typed.generations[0]
        assert first.meta["constraint"] == STYLE[kind] and first.usage.unconstrained == 0
    report = model.dialect()
    assert (report.dialect, report.structured, report.detected_by) == (kind, STYLE[kind], "probe")


def test_table_classify_job_through_the_console_script(server, tmp_path):
    kind, url = server
    pd.DataFrame({"review": REVIEWS}).to_csv(tmp_path / "reviews.csv", index=False)
    exe = shutil.which("compound") or str(Path(sys.prefix) / "bin" / "compound")
    env = {**os.environ, "OPENAI_BASE_URL": url, "COMPOUND_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [
            exe,
            "table",
            "classify",
            str(tmp_path / "reviews.csv"),
            "--column",
            "sentiment",
            "--labels",
            "positive,negative",
            "--input-columns",
            "review",
            "--model",
            "openai:local",
            "--out",
            str(tmp_path / "out.csv"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    labels = pd.read_csv(tmp_path / "out.csv")["sentiment"]
    assert len(labels) == len(REVIEWS) and set(labels) <= {"positive", "negative"}


def test_cascade_whose_last_stage_is_remote(server):
    kind, url = server

    def local(request):  # a cheap local stage that is sure only about reviews that say "great"
        text = request.messages[-1].content
        sure = "great" in text.lower()
        return '{"label": "positive"}' if sure or request.sample_index % 2 else '{"label": "negative"}'

    small = compound.LLMStage(
        compound.Predict(
            compound.Signature(Review, Sentiment, "Classify the review."),
            model=compound.ScriptedBackend(local, model="local-stage"),
        ),
        "label",
        "local",
        votes=2,
    )
    remote = compound.LLMStage(
        compound.Predict(
            compound.Signature(Review, Sentiment, "Classify the review."),
            model=compound.OpenAIBackend("local", base_url=url),
            max_tokens=24,
        ),
        "label",
        "remote",
    )
    cascade = compound.Cascade([small, remote], "label", thresholds=[Threshold(1.0, 0.9, 0.1, 0, 0.0, 0.0)])

    async def run_all():
        return [await cascade.acall(row=r) for r in REVIEWS]

    outs = asyncio.run(run_all())
    assert [o["stage"] for o in outs] == ["local", "remote", "local", "remote"]
    assert all(o["label"] in ("positive", "negative") for o in outs)
    assert cascade.answered_by == {"local": 2, "remote": 2}
