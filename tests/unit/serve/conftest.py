"""A live server on loopback over scripted backends with realistic latency, and its keys."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "fixtures"))
from email_drafts import email_reply  # noqa: E402

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from compound.core.types import Request  # noqa: E402
from compound.models.scripted import ScriptedBackend  # noqa: E402
from compound.program.predict import Predict, Signature  # noqa: E402
from compound.serve.app import Limits, create_app  # noqa: E402
from compound.serve.cli import BackgroundServer  # noqa: E402
from compound.serve.keys import KeyStore, new_key  # noqa: E402
from compound.serve.programs import served_program  # noqa: E402
from compound.serve.write_email import WriteEmail  # noqa: E402

LATENCY = 0.05


def answer_reply(request: Request) -> str:
    """A question-answering program's model: answers with the question's length."""
    question = request.messages[-1].content.split("question:", 1)[-1].strip()
    return json.dumps({"answer": f"{len(question)} characters", "confidence": 0.9})


def make_programs():
    from pydantic import BaseModel

    class Question(BaseModel):
        question: str

    class Answer(BaseModel):
        answer: str
        confidence: float

    qa = Predict(
        Signature(Question, Answer, "Answer."), model=ScriptedBackend(answer_reply, model="qa", latency_s=LATENCY)
    )
    email = WriteEmail(model=ScriptedBackend(email_reply, model="email", latency_s=LATENCY))
    return [served_program("qa", qa), served_program("write_email", email)]


@pytest.fixture
def keys(isolated_home):
    store = KeyStore(isolated_home / "serve.sqlite")
    alice, alice_secret = new_key("alice")
    capped, capped_secret = new_key("capped", calls=3)
    store.set_keys([alice, capped])
    return store, {"alice": alice_secret, "capped": capped_secret}


@pytest.fixture
def server(keys, tmp_path):
    store, secrets = keys
    echo = ScriptedBackend(model="echo", latency_s=LATENCY)
    app = create_app(make_programs(), {"echo": echo}, store, Limits(max_body_bytes=20_000), reports=[str(tmp_path)])
    with BackgroundServer(app) as url:
        yield url, secrets
