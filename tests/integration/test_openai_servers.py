"""The ``openai:`` backend against two real servers on loopback, both serving the 135M model:
llama-cpp-python's ``llama_cpp.server`` and llama.cpp's own llama-server (through the xllamacpp wheel).

Against each: typed calls, a ``compound table classify`` job run by the installed console script, and a
cascade whose last stage is remote. Each server runs in a subprocess with two threads and a small
context (``compound.models.local_server``), started once per session, waited for with a bounded timeout and
always killed.
"""

import asyncio
from typing import Literal

import pandas as pd
import pytest
from pydantic import BaseModel

import compound
from compound.core.settings import get_settings
from compound.models import dialects
from compound.models.embedded import get_embedded
from compound.models.local_server import local_server
from compound.routing.calibrate import Threshold

#: how each server takes a JSON schema (models.dialects)
STYLE = {"llama-cpp-py": "json_object", "llama-server": "json_schema"}
NEEDS = {"llama-cpp-py": "llama_cpp.server", "llama-server": "xllamacpp"}


@pytest.fixture(scope="session", params=sorted(STYLE))
def server(request, tmp_path_factory):
    """(kind, base URL) of a running server; killed at the end whatever happened."""
    kind = request.param
    pytest.importorskip(NEEDS[kind], reason=f"{kind} needs {NEEDS[kind]}")
    if not get_embedded(get_settings().small).installed():
        pytest.fail(f"the embedded model is not installed: compound models install {get_settings().small}")
    model = get_embedded(get_settings().small).path(tmp_path_factory.mktemp("models"))
    with local_server(kind, model, log=tmp_path_factory.mktemp(kind) / "server.log") as url:
        try:
            yield kind, url
        finally:
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


def test_a_plain_user_schema_is_sent_closed_and_bounded_and_met(server):
    """llama_cpp.server takes a schema as json_object+schema, llama-server as json_schema: both get the
    closed, bounded schema and enforce it."""
    import jsonschema

    kind, url = server
    plain = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
    }
    model = compound.OpenAIBackend("local", base_url=url)
    typed = compound.call_typed(plain, "Give a city and its country.", model=model, max_tokens=64, cache=False)
    jsonschema.validate(typed.value, {**plain, "additionalProperties": False})
    first = typed.generations[0]
    assert first.meta["constraint"] == STYLE[kind]


def test_table_classify_job_through_the_console_script(server, tmp_path, compound_cli):
    kind, url = server
    pd.DataFrame({"review": REVIEWS}).to_csv(tmp_path / "reviews.csv", index=False)
    out = compound_cli(
        *("table", "classify", tmp_path / "reviews.csv", "--column", "sentiment", "--labels", "positive,negative"),
        *("--input-columns", "review", "--model", "openai:local", "--out", tmp_path / "out.csv", "--no-progress"),
        env={"OPENAI_BASE_URL": url},
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    labels = pd.read_csv(tmp_path / "out.csv")["sentiment"]
    assert len(labels) == len(REVIEWS) and set(labels) <= {"positive", "negative"}


def test_a_table_map_of_free_text_is_asked_for_as_plain_text(server):
    # no schema goes out (no grammar on the server), and each row's value is the model's stripped reply
    from compound import tables
    from compound.tables.jobs import process_table

    kind, url = server
    model = compound.OpenAIBackend("local", base_url=url)
    df = pd.DataFrame({"review": REVIEWS[:2]})
    op = tables.map(df, "topic", "Name the topic of the review in at most five words.", model=model)
    assert op.program.output_format == "text"
    out = process_table(op, df)
    topics = out.df["topic"].tolist()
    assert all(isinstance(t, str) and t and t == t.strip() and not t.startswith("{") for t in topics), topics
    assert out.usage.total.calls == len(REVIEWS[:2])  # one call a row: every reply parsed as it came


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
