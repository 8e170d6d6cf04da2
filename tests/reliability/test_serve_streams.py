"""Streams a client drops halfway, through the official openai client against compound serve: the
generation stops, the key's budget reservation is released and the partial use is charged, nothing half
written is cached, and the trace says the call was cancelled."""

import time

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from compound.models.scripted import ScriptedBackend  # noqa: E402
from compound.serve.app import create_app  # noqa: E402
from compound.serve.background import BackgroundServer  # noqa: E402
from compound.serve.keys import KeyStore, new_key  # noqa: E402
from compound.store.traces import trace_store  # noqa: E402

WORDS = " ".join(f"word{i}" for i in range(200))


def wait_for(condition, timeout=5.0):
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_stream_dropped_halfway_is_cancelled_released_and_not_cached(isolated_home):
    store = KeyStore(isolated_home / "serve.sqlite")
    key, secret = new_key("dropper", tokens=100_000)
    store.set_keys([key])
    slow = ScriptedBackend(lambda r: WORDS, model="slow", latency_s=4.0)  # 200 words over about 3 s
    app = create_app([], {"slow": slow}, store, ui=False)
    with BackgroundServer(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=secret, max_retries=0)
        msgs = [{"role": "user", "content": "write a lot"}]
        stream = client.chat.completions.create(model="slow", messages=msgs, stream=True)
        got = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
            if len(got) == 5:
                break
        stream.close()  # the client goes away halfway
        assert wait_for(lambda: slow.in_flight == 0, timeout=3.0)  # well before the 4 s the whole reply takes
        assert wait_for(lambda: any(s["status"] == "cancelled" for s in trace_store().list(20, kind="llm")))
        cancelled = [s for s in trace_store().list(20, kind="llm") if s["status"] == "cancelled"]
        assert len(cancelled) == 1
        assert wait_for(lambda: (store.usage_today("dropper") or {}).get("completion_tokens", 0) > 0)
        used = store.usage_today("dropper")
        assert 0 < used["completion_tokens"] < len(WORDS) // 4  # charged what was generated, not the whole reply
        assert store.admit(key).reserved_tokens == 0  # the reservation was released

        whole = client.chat.completions.create(model="slow", messages=msgs)
        assert whole.choices[0].message.content == WORDS  # computed anew: nothing half written was cached
        assert whole.model_extra["compound"]["usage"]["cached_calls"] == 0
        assert len(slow.requests) == 2
