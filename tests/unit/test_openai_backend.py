"""The OpenAI-compatible backend against a small real HTTP server on loopback."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import BaseModel

import compound
from compound import BackendError, ConfigurationError
from compound.models.openai_compat import OpenAIBackend
from compound.program.typed import call_typed

pytestmark = pytest.mark.real_backend  # a real backend class against a local fake server


class FakeServer:
    def __init__(self, fail_first: int = 0, status: int = 500):
        self.requests: list[dict] = []
        self.fail_left = fail_first
        self.status = status
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                if server.fail_left > 0:
                    server.fail_left -= 1
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "try again"}}')
                    return
                content = '{"city": "Lyon", "country": "France"}' if "response_format" in body else "plain reply"
                reply = {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                    ],
                    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


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
    sent = server.requests[0]
    assert sent["model"] == "local-model" and sent["max_tokens"] == 20 and sent["seed"] == 3


def test_structured_output_is_sent_as_json_schema(server):
    model = OpenAIBackend("local-model", base_url=server.url)
    out = call_typed(City, "a city", model=model)
    assert out.value.city == "Lyon"
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["city", "country"]


def test_transient_errors_are_retried():
    s = FakeServer(fail_first=2, status=503)
    try:
        with compound.context(max_retries=3):
            g = OpenAIBackend("m", base_url=s.url).generate("x")
        assert g.text == "plain reply" and len(s.requests) == 3
    finally:
        s.close()


def test_persistent_errors_raise_backend_error_and_are_not_cached():
    s = FakeServer(fail_first=10, status=500)
    try:
        with compound.context(max_retries=1):
            with pytest.raises(BackendError, match="after 1 retries"):
                OpenAIBackend("m", base_url=s.url).generate("x")
        assert len(s.requests) == 2
    finally:
        s.close()


def test_async_calls_run_concurrently(server):
    model = OpenAIBackend("m", base_url=server.url)

    async def main():
        return await compound.gather([model.agenerate(f"q{i}") for i in range(6)])

    assert [g.text for g in asyncio.run(main())] == ["plain reply"] * 6


def test_settings_and_environment_give_the_endpoint(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_BASE_URL"):
        OpenAIBackend("m").generate("x", cache=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    assert compound.get_model("openai:m").generate("x").text == "plain reply"
