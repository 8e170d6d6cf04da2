"""Spans reach an OTLP/HTTP collector (a loopback HTTP server decoding the protobuf request) with the
GenAI attributes and the same parent-child tree as the SQLite store."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import compound
from compound.control.requirements import Check
from compound.program.predict import Predict
from compound.store.otel import flush_otel
from compound.store.traces import span, trace_store
from compound.strategies.repair import Repair

pytest.importorskip("opentelemetry.proto")


class Collector:
    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: list = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                for rs in req.resource_spans:
                    for ss in rs.scope_spans:
                        collector.spans.extend(ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def wait_for(self, n: int, timeout: float = 10.0) -> list:
        deadline = time.time() + timeout
        while len(self.spans) < n and time.time() < deadline:
            flush_otel()
            time.sleep(0.05)
        return self.spans


def attrs(s) -> dict:
    out = {}
    for kv in s.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


def test_spans_arrive_with_genai_attributes_and_tree():
    collector = Collector()
    compound.configure(otlp_endpoint=collector.endpoint, prices={"scripted": compound.Price(1.0, 2.0)})
    backend = compound.ScriptedBackend(['{"answer": "12"}', '{"answer": "twelve"}'], model="scripted")
    step = Predict(
        "question -> answer",
        model=backend,
        requirements=[Check(lambda v: not any(c.isdigit() for c in v.answer), "no digits")],
        strategy=Repair(attempts=2),
    )
    with compound.start_run("otel-test") as r:
        assert step(question="how many?").answer == "twelve"
        with span("tool", "lookup"):
            pass
    stored = {s["id"]: s for s in trace_store().run_spans(r.id)}
    got = collector.wait_for(len(stored))
    assert len(got) == len(stored)

    by_id = {s.span_id.hex(): s for s in got}
    assert set(by_id) == set(stored)  # compound span ids are the OTel span ids
    assert {s.trace_id.hex()[:16] for s in got} == {r.id}  # one trace per run
    for sid, s in by_id.items():  # the same tree as SQLite
        parent = stored[sid]["parent_id"]
        assert (s.parent_span_id.hex() or None) == parent

    kinds = {sid: attrs(s)["compound.kind"] for sid, s in by_id.items()}
    assert sorted(kinds.values()) == [
        "candidate",
        "candidate",
        "llm",
        "llm",
        "run",
        "step",
        "tool",
        "validation",
        "validation",
    ]
    llm = [attrs(s) for s in got if attrs(s)["compound.kind"] == "llm"]
    for a in llm:
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == "scripted"
        assert a["gen_ai.request.model"] == "scripted"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["gen_ai.usage.cost"] > 0 and a["compound.energy_j"] >= 0
    run_attrs = attrs(by_id[r.id])
    assert run_attrs["gen_ai.operation.name"] == "invoke_agent"
    # the run's totals are the sum of its model calls
    assert run_attrs["gen_ai.usage.input_tokens"] == sum(a["gen_ai.usage.input_tokens"] for a in llm)
    assert run_attrs["gen_ai.usage.cost"] == pytest.approx(sum(a["gen_ai.usage.cost"] for a in llm))
    tool = next(attrs(s) for s in got if attrs(s)["compound.kind"] == "tool")
    assert tool["gen_ai.operation.name"] == "execute_tool" and tool["gen_ai.tool.name"] == "lookup"
    # a parent ends after its children
    run_span = by_id[r.id]
    assert all(s.end_time_unix_nano <= run_span.end_time_unix_nano for s in got)
    collector.server.shutdown()
