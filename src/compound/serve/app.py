"""The FastAPI application behind ``compound serve`` (extra ``[serve]``).

Routes: ``POST /v1/chat/completions`` (see ``chat.py``), ``POST /v1/programs/{name}/run`` (one route per
served program, its input and output models in the OpenAPI document), ``GET /v1/models``, ``/healthz``,
``/metrics`` (Prometheus text) and the web UI at ``/ui``.

Guarantees:
- Every refusal is a 4xx with an OpenAI-style body ``{"error": {"message", "type", "code"}}`` that says
  why: malformed JSON 400, a body over ``max_body_bytes`` 413 (checked on the declared length and on the
  bytes actually received), a missing or bad key 401, an unknown model or program 404, inputs or a
  schema that do not fit 422, a spent budget or overload 429 with ``Retry-After``.
- A model reply that never validated is a 502; anything unexpected a 500 whose detail is in the log.
"""

import functools
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from compound.models.base import Backend
from compound.models.registry import get_model
from compound.serve import chat
from compound.serve.keys import ApiKey, KeyStore
from compound.serve.programs import RequestError, Served
from compound.serve.runtime import NO_BUFFERING, Gate, Metrics, Outcome, Runtime, output_of, run_program, timed

log = logging.getLogger("compound.serve")


@dataclass
class Limits:
    max_body_bytes: int = 1_000_000
    max_inflight: int = 64
    max_waiting: int = 256
    wait_s: float = 30.0


class Usage(BaseModel):
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cpu_s: float
    energy_j: float
    energy_estimated: bool
    cost_usd: float
    cached_calls: int


class CompoundInfo(BaseModel):
    run_id: str
    usage: Usage
    stage: str | None = None
    strategy: dict[str, Any] | None = None


def error_body(status: int, message: str, code: str) -> dict[str, Any]:
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error"
    )
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


class Edge:
    """Pure ASGI, outermost: refuses bodies over ``limit`` bytes (declared or received) with 413, and
    times every request into the metrics (a ``BaseHTTPMiddleware`` would cost a task per request)."""

    def __init__(self, app: Any, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        done = timed(self.metrics, route_label(scope["path"]))
        status = [500]

        async def sent(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                return await self._refuse(sent)
            seen = 0

            async def counted() -> dict:
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestError(413, self._message(), "body_too_large")
                return message

            await self.app(scope, counted, sent)
        finally:
            done(status[0])

    def _message(self) -> str:
        return f"request body over {self.limit} bytes; send less (the server's --max-body-bytes)"

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(error_body(413, self._message(), "body_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def route_label(path: str) -> str:
    """A bounded set of metric labels, whatever paths clients send."""
    if path in ("/v1/chat/completions", "/healthz", "/metrics"):
        return path
    if path.startswith("/v1/programs/"):
        return "/v1/programs/run"
    return "/ui" if path.startswith("/ui") else "other"


def create_app(
    programs: list[Served] | None = None,
    models: dict[str, Backend | str] | None = None,
    keys: KeyStore | None = None,
    limits: Limits | None = None,
    reports: list[str] | None = None,
    ui: bool = True,
) -> FastAPI:
    """The server app. ``models`` maps the names clients use to backends (or model specs)."""
    from compound.core.settings import get_settings

    limits = limits or Limits()
    programs_by_name = {p.name: p for p in programs or []}
    model_specs = dict(models or {})
    clash = set(programs_by_name) & set(model_specs)
    if clash:
        from compound.core.errors import ConfigurationError

        raise ConfigurationError(f"names served both as a program and as a model: {sorted(clash)}")
    key_store: KeyStore = keys if keys is not None else KeyStore.at(get_settings().home / "serve.sqlite")
    metrics = Metrics()
    runtime = Runtime(key_store, Gate(limits.max_inflight, limits.max_waiting, limits.wait_s), metrics)
    app = FastAPI(
        title="compound serve",
        version="1",
        description="Compound programs and models behind an OpenAI-compatible API.",
    )
    app.state.runtime = runtime
    app.state.programs = programs_by_name
    bearer = HTTPBearer(auto_error=False, description="an API key from the server's key file or COMPOUND_API_KEYS")

    async def api_key(
        request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> ApiKey:
        return key_store.authorize(request.headers.get("authorization") if creds is not None else None)

    key_dep: Any = Annotated[ApiKey, Depends(api_key)]  # FastAPI reads the annotation at run time

    @app.exception_handler(RequestError)
    async def _refused(request: Request, e: RequestError) -> JSONResponse:
        return JSONResponse(error_body(e.status, str(e), e.code), e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return JSONResponse(error_body(400, "the request body is not valid JSON", "invalid_json"), 400)
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in errors[:10])
        return JSONResponse(error_body(422, f"the request does not fit the schema: {detail}", "invalid_request"), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(e.status_code, str(e.detail), "http_error"), e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(
            error_body(500, f"internal error ({type(e).__name__}); see the server log", "internal"), 500
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "programs": sorted(programs_by_name), "models": sorted(model_specs)}

    @app.get("/metrics", response_class=Response)
    async def metrics_text() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def list_models(key: Annotated[ApiKey, Depends(api_key)]) -> dict[str, Any]:
        names = sorted(programs_by_name) + sorted(model_specs)
        return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "compound"} for n in names]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: chat.ChatRequest, key: Annotated[ApiKey, Depends(api_key)]) -> Any:
        req.refuse_unsupported()
        served = programs_by_name.get(req.model)
        if served is not None:
            chat.check_program_request(req)
            last = [m for m in req.messages if m.role == "user"]
            if not last:
                raise RequestError(400, "send at least one user message", "invalid_request")
            inputs = served.chat_inputs(chat.text_of(last[-1]))
            chat.requested_schema(req)  # refuse a bad schema before running anything
            work: Any = functools.partial(run_program, served, inputs)

            def choices_of(outcome: Outcome) -> list[tuple[str, str]]:
                return [(chat.program_reply(served, req, outcome.value), "stop")]

        elif req.model in model_specs:
            backend = get_model(model_specs[req.model])
            chat.requested_schema(req)
            work = functools.partial(chat.complete_model, backend, req)

            def choices_of(outcome: Outcome) -> list[tuple[str, str]]:
                return outcome.value

        else:
            raise RequestError(
                404,
                f"no served program or model named {req.model!r}; served: {sorted(programs_by_name) + sorted(model_specs)}",
                "model_not_found",
            )
        if req.stream:
            events = await runtime.stream(key, req.model, work)
            body = chat.stream_events(req, events, served is None, lambda o: (choices_of(o), o.info))
            return StreamingResponse(body, media_type="text/event-stream", headers=NO_BUFFERING)
        outcome = await runtime.execute(key, req.model, work)
        return JSONResponse(chat.completion(req, choices_of(outcome), outcome.info))

    for served in programs_by_name.values():
        _add_program_route(app, served, runtime, key_dep)

    if ui:
        from compound.serve.ui import mount_ui

        mount_ui(app, reports or [])
    app.add_middleware(Edge, limit=limits.max_body_bytes, metrics=metrics)
    return app


def _add_program_route(app: FastAPI, served: Served, runtime: Runtime, key_dep: Any) -> None:
    cls = served.outputs.__name__
    response_model = create_model(f"{served.name}_response", output=(served.outputs, ...), compound=(CompoundInfo, ...))
    inputs_model = served.inputs

    async def run_endpoint(body: inputs_model, key: key_dep) -> Any:  # type: ignore[valid-type]
        inputs = served.check_inputs(body.model_dump())
        outcome = await runtime.execute(key, served.name, lambda: run_program(served, inputs))
        value = output_of(outcome.value)
        return {
            "output": value.model_dump(mode="json") if isinstance(value, BaseModel) else value,
            "compound": outcome.info,
        }

    app.post(
        f"/v1/programs/{served.name}/run",
        response_model=response_model,
        name=f"run_{served.name}",
        summary=f"Run the program {served.name!r}: {cls} out",
        responses={
            401: {"description": "missing or invalid API key"},
            422: {"description": "inputs do not fit the program's schema"},
            429: {"description": "budget spent or server busy (Retry-After)"},
        },
    )(run_endpoint)
