"""The official openai client, unchanged, against compound serve: completions, structured output, streams."""

import pytest
from pydantic import BaseModel

openai = pytest.importorskip("openai")


def client(url, secret):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)


def test_completion_from_program_and_model(server):
    url, secrets = server
    c = client(url, secrets["alice"])
    r = c.chat.completions.create(model="qa", messages=[{"role": "user", "content": "why is the sky blue?"}])
    assert r.choices[0].message.content == '{"answer": "20 characters", "confidence": 0.9}'
    info = r.model_extra["compound"]
    assert info["run_id"] and info["usage"]["calls"] == 1 and info["usage"]["total_tokens"] == r.usage.total_tokens
    assert r.usage.prompt_tokens > 0 and info["usage"]["cpu_s"] >= 0 and "energy_j" in info["usage"]

    r = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello there"}], n=2, stop=["zz"])
    assert [ch.message.content for ch in r.choices] == ["hello there", "hello there"]
    assert r.model_extra["compound"]["usage"]["calls"] == 2

    r = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "a b c d e f g h"}], max_tokens=1)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 1


def test_structured_output_from_program_and_model(server):
    url, secrets = server
    c = client(url, secrets["alice"])

    class Answer(BaseModel):
        answer: str
        confidence: float

    parsed = c.chat.completions.parse(
        model="qa", messages=[{"role": "user", "content": '{"question": "two"}'}], response_format=Answer
    )
    assert parsed.choices[0].message.parsed == Answer(answer="3 characters", confidence=0.9)

    class Other(BaseModel):
        title: str

    with pytest.raises(openai.UnprocessableEntityError, match="does not fit the requested response_format"):
        c.chat.completions.parse(model="qa", messages=[{"role": "user", "content": "x"}], response_format=Other)


def test_stream_from_program(server):
    url, secrets = server
    c = client(url, secrets["alice"])
    stream = c.chat.completions.create(
        model="write_email",
        messages=[{"role": "user", "content": "Ana, team lunch moved to Friday, warm"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert '"subject": "Lunch moves to Friday"' in text and "12:30" not in text
    finish = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finish[0].choices[0].finish_reason == "stop"
    info = finish[0].model_extra["compound"]
    assert info["strategy"]["candidates"] == 2 and info["strategy"]["chosen"] == 1  # repaired once
    assert chunks[-1].usage.total_tokens == info["usage"]["total_tokens"] > 0


def test_refusals_are_clear(server):
    url, secrets = server
    c = client(url, secrets["alice"])
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError, match="no served program or model named 'nope'"):
        c.chat.completions.create(model="nope", messages=msgs)
    with pytest.raises(openai.BadRequestError, match="chooses its own sampling"):
        c.chat.completions.create(model="qa", messages=msgs, max_tokens=5)
    with pytest.raises(openai.BadRequestError, match="not supported"):
        c.chat.completions.create(model="echo", messages=msgs, logprobs=True)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(url, "sk-wrong").chat.completions.create(model="echo", messages=msgs)


def test_a_model_streams_its_tokens_as_they_are_written(server):
    url, secrets = server
    c = client(url, secrets["alice"])
    words = " ".join(f"word{i}" for i in range(30))
    stream = c.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": words}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert "".join(deltas) == words and len(deltas) == 30  # a chunk a word as the model wrote it, not one at the end
    last = chunks[-1]
    assert last.usage.total_tokens == last.model_extra["compound"]["usage"]["total_tokens"] > 0
    whole = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": words}])
    assert whole.choices[0].message.content == words  # the same text (here from the cache the stream filled)
    assert whole.model_extra["compound"]["usage"]["cached_calls"] == 1


def test_a_structured_stream_sends_the_constrained_json_as_written(server):
    url, secrets = server
    c = client(url, secrets["alice"])
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    stream = c.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": '{"city": "Lyon"}'}],
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        stream=True,
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text == '{"city": "Lyon"}'


def test_max_tokens_zero_is_refused_before_any_stream(server):
    url, secrets = server
    c = client(url, secrets["alice"])
    with pytest.raises(openai.UnprocessableEntityError, match="max_tokens"):
        c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}], max_tokens=0, stream=True)


def test_a_spent_budget_is_a_429_before_the_stream_starts(server):
    url, secrets = server
    c = client(url, secrets["capped"])
    msgs = [{"role": "user", "content": "hi there"}]
    for i in range(3):
        list(c.chat.completions.create(model="echo", messages=[{"role": "user", "content": f"hi {i}"}], stream=True))
    with pytest.raises(openai.RateLimitError, match="has used its 3 calls"):
        c.chat.completions.create(model="echo", messages=msgs, stream=True)
