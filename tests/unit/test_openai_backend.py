"""The OpenAI-compatible backend against small real HTTP servers on loopback (``openai_fake``): calls,
retries that can succeed, a cache that knows the endpoint, loop-safe clients."""

import asyncio
import gc
import time

import pytest
from pydantic import BaseModel

import compound
from compound import BackendError, ConfigurationError
from compound.models.openai_compat import OpenAIBackend
from compound.models.typed import call_typed

from .openai_fake import PYDANTIC_500, FakeServer

pytestmark = pytest.mark.real_backend  # a real backend class against a local fake server


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


class City(BaseModel):
    city: str
    country: str


def test_chat_call_usage_and_energy_estimate(server):
    model = OpenAIBackend("local-model", base_url=server.url)
    g = model.generate("hello", max_tokens=20, temperature=0.5, sample_index=3)
    assert g.text == "plain reply"
    assert (g.usage.prompt_tokens, g.usage.completion_tokens) == (11, 7)
    assert g.usage.energy_estimated and g.usage.energy_j == pytest.approx(18 * 0.3)
    sent = server.chat_posts()[0]
    assert sent["model"] == "local-model" and sent["max_tokens"] == 20 and sent["seed"] == 3
    assert g.meta == {"system_fingerprint": "fp-openai"} and g.usage.unconstrained == 0


def test_structured_output_is_sent_as_json_schema(server):
    model = OpenAIBackend("local-model", base_url=server.url)
    out = call_typed(City, "a city", model=model)
    assert out.value.city == "Lyon"
    fmt = server.chat_posts()[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["city", "country"]
    assert out.generations[0].meta["constraint"] == "json_schema"


@pytest.mark.parametrize(
    "status, body, says",
    [
        (400, {"error": {"message": "max_tokens is too large: 99999"}}, "max_tokens is too large"),
        (404, {"error": {"message": "The model `nope` does not exist"}}, "does not exist"),
        (422, {"detail": [{"loc": ["body", "messages"], "msg": "Field required"}]}, "Field required"),
        (500, {"error": {"message": PYDANTIC_500, "type": "internal_server_error"}}, "Input should be"),
    ],
)
def test_a_deterministic_error_is_sent_once_with_the_servers_message(status, body, says):
    s = FakeServer(script=[(status, {}, body)] * 5)
    try:
        with compound.context(max_retries=4):
            with pytest.raises(BackendError, match=says) as info:
                OpenAIBackend("m", base_url=s.url).generate("x")
        assert len(s.posts) == 1
        assert info.value.status == status and info.value.retryable is False
        assert isinstance(info.value, compound.CompoundError)
    finally:
        s.close()


def test_rate_limits_and_overload_are_retried_after_what_the_server_asks():
    s = FakeServer(
        script=[
            (429, {"Retry-After": "0.4"}, {"error": {"message": "slow down"}}),
            (503, {"retry-after-ms": "300"}, {"error": {"message": "loading model"}}),
        ]
    )
    try:
        t0 = time.perf_counter()
        with compound.context(max_retries=3):
            g = OpenAIBackend("m", base_url=s.url).generate("x")
        waited = time.perf_counter() - t0
        assert g.text == "plain reply" and len(s.posts) == 3
        assert waited >= 0.7  # 0.4 s, then 0.3 s, as asked
    finally:
        s.close()


def test_dropped_connections_and_timeouts_are_retried():
    s = FakeServer(script=["drop", ("sleep", 1.5)])
    try:
        with compound.context(max_retries=2, request_timeout_s=0.5):
            g = OpenAIBackend("m", base_url=s.url).generate("x")
        assert g.text == "plain reply" and len(s.posts) == 3
    finally:
        s.close()


def test_retries_stop_after_max_retries_and_nothing_is_cached():
    s = FakeServer(script=[(503, {"Retry-After": "0"}, {"error": {"message": "overloaded"}})] * 10)
    try:
        with compound.context(max_retries=2):
            with pytest.raises(BackendError, match="after 2 retries") as info:
                OpenAIBackend("m", base_url=s.url).generate("x")
            assert info.value.status == 503 and info.value.retryable
            assert len(s.posts) == 3
            s.script.clear()
            assert OpenAIBackend("m", base_url=s.url).generate("x").cached is False
    finally:
        s.close()


def test_same_alias_on_two_servers_never_shares_a_cached_answer():
    a, b = FakeServer("llama-server", reply="from a"), FakeServer("llama-cpp-py", reply="from b")
    try:
        first = OpenAIBackend("local", base_url=a.url).generate("same prompt")
        second = OpenAIBackend("local", base_url=b.url).generate("same prompt")
        assert (first.text, second.text) == ("from a", "from b")
        assert not second.cached and len(b.posts) == 1
        again = OpenAIBackend("local", base_url=a.url).generate("same prompt")
        assert again.cached and again.text == "from a" and len(a.posts) == 1
        typed_a = call_typed(City, "a city", model=OpenAIBackend("local", base_url=a.url))
        typed_b = call_typed(City, "a city", model=OpenAIBackend("local", base_url=b.url))
        assert not typed_b.generations[0].cached and typed_b.generations[0].meta["constraint"] == "json_object"
        assert typed_a.value == typed_b.value
    finally:
        a.close()
        b.close()


def test_the_cache_identity_names_the_endpoint_and_the_served_model():
    a, b = (
        FakeServer("llama-server", models=("SmolLM2-135M.gguf",)),
        FakeServer("llama-server", models=("Qwen-1.5B.gguf",)),
    )
    try:
        ids = [OpenAIBackend("local", base_url=s.url).cache_identity() for s in (a, b)]
        assert ids[0] != ids[1]
        assert a.url in ids[0] and "SmolLM2-135M.gguf" in ids[0] and "Qwen-1.5B.gguf" in ids[1]
        assert compound.ScriptedBackend(["x"]).cache_identity() == "scripted:scripted"
    finally:
        a.close()
        b.close()


def test_async_calls_run_concurrently(server):
    model = OpenAIBackend("m", base_url=server.url)

    async def main():
        return await compound.gather([model.agenerate(f"q{i}") for i in range(6)])

    t0 = time.perf_counter()
    assert [g.text for g in asyncio.run(main())] == ["plain reply"] * 6
    assert time.perf_counter() - t0 < 6 * server.latency_s + 1.0


def test_async_clients_belong_to_their_loop_and_go_with_it(server):
    model = OpenAIBackend("m", base_url=server.url)

    async def client_of_this_loop():
        await model.agenerate("x", cache=False)
        return model._client(True)

    first = asyncio.run(client_of_this_loop())
    second = asyncio.run(client_of_this_loop())
    assert first is not second  # a new loop never gets a client bound to a closed one
    assert len(model._loop_clients) == 1  # the closed first loop's entry is gone
    del first, second
    gc.collect()
    assert len(model._loop_clients) <= 1


def test_settings_and_environment_give_the_endpoint(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_BASE_URL"):
        OpenAIBackend("m").generate("x", cache=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    assert compound.get_model("openai:m").generate("x").text == "plain reply"


def test_a_streamed_call_arrives_in_deltas_with_the_servers_usage():
    s = FakeServer(reply="one two three four five six", latency_s=0.05)
    try:
        model = OpenAIBackend("local-model", base_url=s.url)
        stream = model.stream("hello", max_tokens=20)
        arrivals = [(time.perf_counter(), d) for d in stream]
        assert "".join(d for _, d in arrivals) == "one two three four five six" and len(arrivals) == 6
        assert arrivals[-1][0] - arrivals[0][0] >= 4 * 0.05  # as the server sent them, not all at the end
        g = stream.generation
        assert (g.usage.prompt_tokens, g.usage.completion_tokens) == (11, 7)
        body = s.chat_posts()[-1]
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert model.generate("hello", max_tokens=20).cached  # the completed stream was cached
    finally:
        s.close()


def test_an_async_stream_closed_halfway_closes_the_servers_stream_and_caches_nothing():
    s = FakeServer(reply=" ".join(f"w{i}" for i in range(40)), latency_s=0.03)
    try:
        model = OpenAIBackend("local-model", base_url=s.url)

        async def main():
            with compound.budget(tokens=10_000) as b:
                async with model.astream("hello", max_tokens=100) as stream:
                    async for _ in stream:
                        break
                assert b.reserved_calls == 0 and stream.generation is None

        asyncio.run(main())
        deadline = time.time() + 3
        while s.streams_aborted == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert s.streams_aborted == 1  # the server saw the client go and stopped
        assert not model.generate("hello", max_tokens=100).cached
    finally:
        s.close()


def test_a_stream_refused_as_a_constraint_steps_down_like_a_whole_call():
    s = FakeServer("llama-cpp-py", listing=False)  # nothing identifies it before the refusal
    try:
        model = OpenAIBackend("local-model", base_url=s.url)
        stream = model.stream("city?", max_tokens=50, json_schema=City.model_json_schema())
        assert City.model_validate_json(stream.text) == City(**{"city": "Lyon", "country": "France"})
        assert [b.get("stream") for b in s.chat_posts()] == [True, True]  # refused, then json_object
    finally:
        s.close()
