"""A small OpenAI-compatible HTTP server on loopback that speaks one local server's dialect.

Dialects, as the real servers answer:
- ``openai``: ``response_format`` ``json_schema``; an unknown ``grammar`` argument is a 400.
- ``llama-server``: ``json_schema`` and ``grammar``; ``Server: llama.cpp``, models ``owned_by: llamacpp``.
- ``llama-cpp-py``: only ``{"type": "json_object", "schema": ...}``; ``json_schema`` is a 500 whose body
  is a pydantic validation error; ``Server: uvicorn``, models ``owned_by: me``.
- ``ollama``: ``/api/version``, ``/api/tags`` and the native ``/api/chat`` with ``format``; its
  OpenAI-compatible endpoint refuses ``json_schema`` with a 400.
- ``none``: refuses every ``response_format`` and ``grammar`` with a 400.
With ``listing=False`` the server answers no GET (404), so nothing identifies it before a refusal.

``script`` holds replies sent first to POSTs, in order: ``(status, headers, body)``, ``"drop"`` (close
the connection unanswered) or ``("sleep", seconds)`` (answer normally, late). Every reply takes
``latency_s``. ``posts`` records each POST as ``(path, body)``; ``served_tokens`` adds up the tokens of
every reply the server sent with a usage block (including late replies the client gave up on).

A POST with ``stream: true`` is answered as OpenAI does: server-sent events, one
``chat.completion.chunk`` a word (``latency_s`` apart), a last chunk with the usage when
``stream_options.include_usage`` asks for it, then ``data: [DONE]``. ``streams_aborted`` counts streams
the client closed before their end (the server stopped there).
"""

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from compound.models import dialects

CITY = {"city": "Lyon", "country": "France"}
OWNER = {"openai": "system", "llama-server": "llamacpp", "llama-cpp-py": "me", "ollama": "library", "none": "x"}
SERVER = {"llama-server": "llama.cpp", "llama-cpp-py": "uvicorn"}
PYDANTIC_500 = (  # what llama_cpp.server 0.3.36 answers to response_format json_schema (with a 500)
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input "
    "should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': {'expected': \"'text' or 'json_object'\"}}"
    '\n\n  File ".../llama_cpp/server/app.py", line 376, in create_chat_completion\n    POST /v1/chat/completions'
)


class FakeServer:
    def __init__(
        self,
        dialect: str = "openai",
        *,
        script=(),
        latency_s: float = 0.02,
        models=("local-model",),
        reply: str = "plain reply",
        listing: bool = True,
    ):
        self.dialect, self.latency_s, self.models, self.reply, self.listing = dialect, latency_s, models, reply, listing
        self.script = list(script)
        self.posts: list[tuple[str, dict]] = []
        self.gets: list[str] = []
        self.served_tokens = 0
        self.streams_aborted = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send(self, status, body, headers=None):
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                if isinstance(body, dict) and "usage" in body:
                    with fake.lock:
                        fake.served_tokens += body["usage"]["total_tokens"]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if fake.dialect in SERVER:
                    self.send_header("Server", SERVER[fake.dialect])
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                time.sleep(fake.latency_s)
                fake.gets.append(self.path)
                status, body = fake.answer_get(self.path)
                self.send(status, body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                time.sleep(fake.latency_s)
                with fake.lock:
                    fake.posts.append((self.path, body))
                    scripted = fake.script.pop(0) if fake.script else None
                if scripted == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(scripted, tuple) and scripted[0] == "sleep":
                    time.sleep(scripted[1])
                elif scripted is not None:
                    self.send(scripted[0], scripted[2], scripted[1])
                    return
                status, reply = fake.answer_post(self.path, body)
                if body.get("stream") and status == 200:
                    self.stream(reply, body)
                else:
                    self.send(status, reply)

            def stream(self, reply, body):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {k: reply[k] for k in ("id", "created", "model", "system_fingerprint")}
                text = reply["choices"][0]["message"]["content"]
                words = re.findall(r"\s*\S+", text) or [text]
                events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
                events += [{"choices": [{"index": 0, "delta": {"content": w}}]} for w in words]
                events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    events.append({"choices": [], "usage": reply["usage"]})
                try:
                    for event in events:
                        data = {**base, "object": "chat.completion.chunk", **event}
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(fake.latency_s)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except OSError:
                    with fake.lock:
                        fake.streams_aborted += 1
                    return
                if "usage" in events[-1]:
                    with fake.lock:
                        fake.served_tokens += reply["usage"]["total_tokens"]

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def chat_posts(self) -> list[dict]:
        return [body for _, body in self.posts]

    def answer_get(self, path: str):
        if not self.listing:
            return 404, {"error": "not found"}
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [{"id": m, "object": "model", "owned_by": OWNER[self.dialect]} for m in self.models],
            }
        if self.dialect == "ollama" and path == "/api/version":
            return 200, {"version": "0.3.14"}
        if self.dialect == "ollama" and path == "/api/tags":
            return 200, {"models": [{"name": m, "digest": f"sha256:{abs(hash(m)):x}"} for m in self.models]}
        return 404, {"error": {"message": f"File Not Found: {path}"}}

    def refusal(self, body: dict):
        fmt = (body.get("response_format") or {}).get("type")
        if self.dialect == "none" and (fmt or "grammar" in body):
            return 400, {
                "error": {"message": "response_format and grammar are not supported", "type": "invalid_request_error"}
            }
        if self.dialect == "llama-cpp-py" and fmt == "json_schema":
            return 500, {
                "error": {"message": PYDANTIC_500, "type": "internal_server_error", "param": None, "code": None}
            }
        if self.dialect == "ollama" and fmt == "json_schema":
            return 400, {
                "error": {"message": "invalid response_format type 'json_schema'", "type": "invalid_request_error"}
            }
        if self.dialect == "openai" and "grammar" in body:
            return 400, {
                "error": {"message": "Unrecognized request argument supplied: grammar", "type": "invalid_request_error"}
            }
        return None

    def content(self, body: dict, constrained: bool) -> str:
        if constrained:
            return json.dumps(CITY)
        if "JSON" in json.dumps(body.get("messages")):  # asked in words only: answers with chatter around it
            return f"Sure! Here it is:\n```json\n{json.dumps(CITY)}\n```\nAnything else?"
        return self.reply

    def answer_post(self, path: str, body: dict):
        if path == "/api/chat" and self.dialect == "ollama":
            text = self.content(body, "format" in body)
            return 200, {
                "model": body["model"],
                "message": {"role": "assistant", "content": text},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 11,
                "eval_count": 7,
            }
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"File Not Found: {path}"}}
        refusal = self.refusal(body)
        if refusal is not None:
            return refusal
        text = self.content(body, "response_format" in body or "grammar" in body)
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        if body.get("logprobs") and self.dialect in ("openai", "llama-server"):
            choice["logprobs"] = {"content": [{"token": "x", "logprob": -0.25, "top_logprobs": []}]}
        n = body.get("n", 1) if self.dialect == "openai" else 1  # the others answer one choice whatever n is
        return 200, {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "system_fingerprint": f"fp-{self.dialect}",
            "choices": [{**choice, "index": i} for i in range(n)],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        dialects.forget(self.url)  # the next server on this port may speak another dialect
