"""Each local server's dialect through the one ``openai:`` backend, on loopback fakes (``openai_fake``):
found by a probe or by the first refusal, remembered per base URL, and the last resort marked."""

import asyncio

import pytest
from pydantic import BaseModel

import compound
from compound import BackendError
from compound.models import dialects
from compound.models.openai_compat import OpenAIBackend
from compound.models.typed import call_typed, output_spec
from compound.store.traces import trace_store

from .openai_fake import FakeServer

pytestmark = pytest.mark.real_backend  # a real backend class against local fake servers


class City(BaseModel):
    city: str
    country: str


@pytest.fixture
def fake(request):
    servers = []

    def make(*args, **kw):
        servers.append(FakeServer(*args, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def formats(server):
    """(path, how the schema was sent) per request: a response_format type, "format", or None."""
    out = []
    for path, body in server.posts:
        fmt = (body.get("response_format") or {}).get("type") or ("format" if "format" in body else None)
        out.append((path, fmt))
    return out


@pytest.mark.parametrize(
    "dialect, style",
    [("openai", "json_schema"), ("llama-server", "json_schema"), ("llama-cpp-py", "json_object"), ("ollama", "format")],
)
def test_the_probe_names_the_dialect_and_typed_calls_need_no_refusal(fake, dialect, style):
    s = fake(dialect)
    model = OpenAIBackend("local-model", base_url=s.url)
    for i in range(3):
        assert call_typed(City, f"city {i}", model=model).value.city == "Lyon"
    report = model.dialect()
    assert (report.dialect, report.structured, report.detected_by) == (dialect, style, "probe")
    assert len(s.posts) == 3  # one request per call: nothing refused
    if dialect == "ollama":
        assert all(path == "/api/chat" and body["format"]["required"] == ["city", "country"] for path, body in s.posts)
    elif dialect == "llama-cpp-py":
        assert s.posts[0][1]["response_format"] == {
            "type": "json_object",
            "schema": output_spec(City).decoding_schema(256),  # closed, strings bounded, as sent
        }


def test_an_unrecognised_server_is_corrected_on_its_first_refusal_and_it_is_remembered(fake):
    s = fake("llama-cpp-py", listing=False)  # answers no GET: only its refusal can tell
    model = OpenAIBackend("local-model", base_url=s.url)
    for i in range(4):
        assert call_typed(City, f"city {i}", model=model).value.country == "France"
    assert formats(s) == [("/v1/chat/completions", "json_schema")] + [("/v1/chat/completions", "json_object")] * 4
    report = dialects.known(s.url)
    assert (report.structured, report.detected_by) == ("json_object", "refusal")


def test_concurrent_calls_are_refused_at_most_once_each(fake):
    s = fake("llama-cpp-py", listing=False, latency_s=0.05)
    model = OpenAIBackend("local-model", base_url=s.url)

    async def main():
        return await compound.gather([compound.acall_typed(City, f"city {i}", model=model) for i in range(8)])

    assert all(t.value.city == "Lyon" for t in asyncio.run(main()))
    refused = [f for f in formats(s) if f[1] == "json_schema"]
    assert 1 <= len(refused) <= 8 and len(s.posts) == 8 + len(refused)  # those in flight learn it from their own
    assert call_typed(City, "later", model=model) and formats(s)[-1][1] == "json_object"


def test_the_last_resort_is_unconstrained_parsed_out_of_the_reply_and_marked(fake):
    s = fake("none")
    model = OpenAIBackend("local-model", base_url=s.url)
    with compound.start_run("job") as run:
        typed = call_typed(City, "a city", model=model)
        again = call_typed(City, "another city", model=model)
    assert typed.value.city == again.value.city == "Lyon"  # cut out of "Sure! ```json ...``` Anything else?"
    g = typed.generations[0]
    assert g.meta["constraint"] == "unconstrained" and g.usage.unconstrained == 1
    assert formats(s) == [
        ("/v1/chat/completions", "json_schema"),
        ("/v1/chat/completions", "json_object"),
        ("/v1/chat/completions", None),
        ("/v1/chat/completions", None),
    ]
    spans = [sp for sp in trace_store().run_spans(run.id) if sp["kind"] == "llm"]
    assert len(spans) == 2 and all(sp["attrs"]["constraint"] == "unconstrained" for sp in spans)
    assert trace_store().get(run.id)["attrs"]["usage"]["physical"]["unconstrained"] == 2


def test_grammar_is_sent_where_it_is_understood_and_dropped_where_refused(fake):
    llama, hosted = fake("llama-server"), fake("openai")
    grammar = 'root ::= "yes" | "no"'
    g = OpenAIBackend("m", base_url=llama.url).generate("ok?", grammar=grammar)
    assert llama.posts[0][1]["grammar"] == grammar and g.meta["constraint"] == "grammar"
    g = OpenAIBackend("m", base_url=hosted.url).generate("ok?", grammar=grammar)
    assert g.meta["constraint"] == "unconstrained" and g.usage.unconstrained == 1
    assert ["grammar" in body for _, body in hosted.posts] == [True, False]
    assert dialects.known(hosted.url).structured == "json_schema"  # only grammar was given up


def test_an_unrelated_400_on_a_constrained_call_fails_once_and_downgrades_nothing(fake):
    s = fake(
        "llama-server", script=[(400, {}, {"error": {"message": "the request exceeds the available context size"}})]
    )
    model = OpenAIBackend("m", base_url=s.url)
    with pytest.raises(BackendError, match="context size"):
        call_typed(City, "a city", model=model)
    assert len(s.posts) == 1 and model.dialect().structured == "json_schema"


@pytest.mark.parametrize(
    "dialect, style, grammar, logprobs, n",
    [
        ("openai", "json_schema", False, True, True),
        ("llama-server", "json_schema", True, True, False),
        ("llama-cpp-py", "json_object", True, False, False),
        ("ollama", "format", False, False, False),
    ],
)
def test_probe_with_a_model_confirms_each_capability(fake, dialect, style, grammar, logprobs, n):
    s = fake(dialect)
    report = dialects.probe(s.url, model="local-model")
    assert report.to_dict() == {
        "base_url": s.url,
        "dialect": dialect,
        "structured_output": style,
        "grammar": grammar,
        "logprobs": logprobs,
        "n": n,
        "models": ["local-model"],
        "detected_by": "probe",
        "checked": True,
    }
    assert dialects.known(s.url) == report


def test_probe_of_a_server_that_is_not_there_says_so():
    with pytest.raises(BackendError, match="cannot reach") as info:
        dialects.probe("http://127.0.0.1:9/v1")
    assert info.value.retryable


def test_extract_json_keeps_the_first_json_value_and_leaves_other_text_alone():
    assert dialects.extract_json('Here:\n```json\n{"a": [1, {"b": "}"}]}\n```') == '{"a": [1, {"b": "}"}]}'
    assert dialects.extract_json("no json {here") == "no json {here"
