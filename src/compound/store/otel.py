"""The OpenTelemetry sink: every finished span is also exported over OTLP/HTTP (extra ``[otel]``).

Guarantees:
- Beside SQLite, not instead of it: ``store.traces.record`` writes each span to both.
- The tree is kept: a compound span id (64 bits of hex) *is* the OTel span id, and the run id, padded to
  128 bits, is the trace id, so children (which end, and are exported, before their parents) point at
  the right parent without any bookkeeping.
- GenAI semantic conventions on model calls (``gen_ai.operation.name``, ``gen_ai.provider.name``,
  ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``), plus
  ``gen_ai.usage.cost`` (US dollars) and ``compound.energy_j`` on every span that has usage.
- Export is batched on a background thread (the OTel SDK's ``BatchSpanProcessor``) and flushed at exit;
  a collector that is down costs log lines, never a failed or slowed call.
"""

from __future__ import annotations

import atexit
import json
import threading
from typing import Any

from compound.store.traces import Span

#: compound span kind -> GenAI operation name (kinds not listed carry only ``compound.kind``)
OPERATIONS = {"llm": "chat", "tool": "execute_tool", "run": "invoke_agent", "step": "invoke_agent"}

_sinks: dict[str, OTelSink] = {}
_lock = threading.Lock()


def traces_url(endpoint: str) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL; the traces path is appended as the spec says."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _ids(s: Span) -> tuple[int, int, int | None]:
    trace = int((s.run_id or s.id).ljust(32, "0")[:32], 16)
    return trace, int(s.id[:16], 16), int(s.parent_id[:16], 16) if s.parent_id else None


def _usage(s: Span) -> dict[str, Any] | None:
    """The span's usage as one dict: a model call's own, or a tracker's physical plus cached total."""
    if s.usage is not None:
        return s.usage.total.to_dict()
    u = s.attrs.get("usage")
    return u if isinstance(u, dict) and "prompt_tokens" in u else None


def attributes(s: Span) -> dict[str, Any]:
    """The OTel attributes of a compound span (GenAI conventions where they apply)."""
    a: dict[str, Any] = {"compound.kind": s.kind, "compound.name": s.name, "compound.status": s.status}
    if s.run_id:
        a["compound.run_id"] = s.run_id
    op = OPERATIONS.get(s.kind)
    if op:
        a["gen_ai.operation.name"] = op
    if s.kind == "llm":
        provider, _, model = s.name.partition(":")
        a["gen_ai.provider.name"] = provider
        a["gen_ai.request.model"] = model or provider
        params = s.attrs.get("params") or {}
        for key, name in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
            if key in params and params[key] is not None:
                a[f"gen_ai.request.{name}"] = params[key]
        if "finish_reason" in s.attrs:
            a["gen_ai.response.finish_reasons"] = [str(s.attrs["finish_reason"])]
        a["compound.cached"] = bool(s.attrs.get("cached", False))
    elif s.kind == "tool":
        a["gen_ai.tool.name"] = s.name
    elif s.kind in ("run", "step"):
        a["gen_ai.agent.name"] = s.name
    usage = _usage(s)
    if usage:
        a["gen_ai.usage.input_tokens"] = int(usage.get("prompt_tokens", 0))
        a["gen_ai.usage.output_tokens"] = int(usage.get("completion_tokens", 0))
        a["gen_ai.usage.cost"] = float(usage.get("cost_usd", 0.0))
        a["compound.energy_j"] = float(usage.get("energy_j", 0.0))
        a["compound.cpu_s"] = float(usage.get("cpu_s", 0.0))
    for key in ("stage", "confidence", "error"):
        if key in s.attrs and s.attrs[key] is not None:
            v = s.attrs[key]
            a[f"compound.{key}"] = v if isinstance(v, (str, bool, int, float)) else json.dumps(v, default=str)
    return a


class OTelSink:
    """Exports finished spans to one OTLP/HTTP endpoint."""

    def __init__(self, endpoint: str) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        except ImportError as e:
            from compound.core.errors import ConfigurationError

            raise ConfigurationError(
                f"an OTLP endpoint is set ({endpoint}) but OpenTelemetry is not installed: "
                "pip install 'compound[otel]', or unset OTEL_EXPORTER_OTLP_ENDPOINT"
            ) from e
        self.endpoint = traces_url(endpoint)
        self.processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint), schedule_delay_millis=200)
        self.resource = Resource.create({"service.name": "compound"})
        self.scope = InstrumentationScope("compound")

    def write(self, span: Span) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
        from opentelemetry.trace.status import Status, StatusCode

        trace_id, span_id, parent_id = _ids(span)
        flags = TraceFlags(TraceFlags.SAMPLED)
        parent = SpanContext(trace_id, parent_id, True, flags) if parent_id is not None else None
        ok = span.status in ("ok", "rejected")
        readable = ReadableSpan(
            name=span.name if span.kind != "llm" else f"chat {span.name}",
            context=SpanContext(trace_id, span_id, False, flags),
            parent=parent,
            resource=self.resource,
            attributes=attributes(span),
            kind=SpanKind.CLIENT if span.kind == "llm" else SpanKind.INTERNAL,
            status=Status(StatusCode.UNSET if ok else StatusCode.ERROR, None if ok else span.attrs.get("error")),
            start_time=int(span.started * 1e9),
            end_time=int((span.ended or span.started) * 1e9),
            instrumentation_scope=self.scope,
        )
        self.processor.on_end(readable)

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.processor.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.processor.shutdown()


def otel_sink(endpoint: str) -> OTelSink:
    """The one sink for ``endpoint`` in this process."""
    sink = _sinks.get(endpoint)
    if sink is None:
        with _lock:
            sink = _sinks.get(endpoint)
            if sink is None:
                sink = _sinks[endpoint] = OTelSink(endpoint)
    return sink


def flush_otel() -> None:
    """Export every queued span now (tests and short scripts call it; it also runs at exit)."""
    for sink in list(_sinks.values()):
        sink.flush()


@atexit.register
def _flush_at_exit() -> None:
    for sink in list(_sinks.values()):
        sink.shutdown()
