"""The dialects of OpenAI-compatible servers: how each one takes a JSON schema, a grammar, logprobs.

Servers that all answer ``/v1/chat/completions`` differ in how they constrain a reply:

=================  ===================================================================  =========
dialect            a JSON schema is sent as                                             grammar
=================  ===================================================================  =========
``openai``         ``response_format: {"type": "json_schema", "json_schema": {...}}``   no
                   (OpenAI, vLLM, and any server not recognised)
``llama-server``   the same (llama.cpp's own server)                                    ``grammar``
``llama-cpp-py``   ``response_format: {"type": "json_object", "schema": {...}}``        ``grammar``
                   (``python -m llama_cpp.server``)
``ollama``         ``format: {...}`` on Ollama's native ``/api/chat``                   no
=================  ===================================================================  =========

Guarantees:

- **Detected once per base URL, per process.** ``report_for`` probes the server with two cheap GETs
  (``/models``, and ``/api/version`` at the root for Ollama) and remembers the answer in a registry
  keyed by base URL, guarded by a lock; reports are immutable, so threads and event loops share them.
- **Corrected on the first refusal.** A server that refuses a constraint (400, 422, or a 500 whose body
  is a validation error, naming what was sent) is moved down one step — ``json_schema`` to
  ``json_object`` to none; grammar to none — and the request is sent again. The step is remembered only
  once a request in the new form succeeds, so an unrelated 400 never downgrades a server.
- **Unconstrained is said out loud.** When nothing is left, the reply is asked for without a constraint,
  the JSON object is cut out of it (``extract_json``), and the ``Completion`` is marked
  ``meta["constraint"] = "unconstrained"``: the generation, its usage and its trace span show it.
- **Retries only what can succeed** (``classify``): 429, 503, timeouts and dropped connections are
  retryable and honour ``Retry-After``; anything else fails at once with the server's own message.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, replace
from typing import Any

from compound.core.errors import BackendError
from compound.core.types import Completion, Request, answer_logprobs, as_messages
from compound.models.retry import server_message


@dataclass(frozen=True)
class DialectReport:
    """What one server (one base URL) speaks and supports.

    ``structured`` is how a JSON schema is sent (``"json_schema"``, ``"json_object"``, ``"format"``, or
    None: not at all). ``models`` maps each served model id to an identity string (id plus what the server
    says about the weights) that keys the response cache. ``detected_by`` is ``"probe"``, ``"refusal"``
    or ``"default"`` (nothing recognised yet); ``checked`` is True when each capability was confirmed by a
    one-token request (``probe(..., check=True)``)."""

    base_url: str
    dialect: str
    structured: str | None
    grammar: bool
    logprobs: bool
    n: bool
    models: tuple[tuple[str, str], ...] = ()
    detected_by: str = "default"
    checked: bool = False

    def identity(self, model: str) -> str | None:
        """The served model's identity for ``model``, or the only model's where the server serves one."""
        served = dict(self.models)
        if model in served:
            return served[model]
        return self.models[0][1] if len(self.models) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "dialect": self.dialect,
            "structured_output": self.structured,
            "grammar": self.grammar,
            "logprobs": self.logprobs,
            "n": self.n,
            "models": [m for m, _ in self.models],
            "detected_by": self.detected_by,
            "checked": self.checked,
        }


_DEFAULTS: dict[str, dict[str, Any]] = {
    "openai": {"structured": "json_schema", "grammar": True, "logprobs": True, "n": True},
    "vllm": {"structured": "json_schema", "grammar": False, "logprobs": True, "n": True},
    "llama-server": {"structured": "json_schema", "grammar": True, "logprobs": True, "n": False},
    "llama-cpp-py": {"structured": "json_object", "grammar": True, "logprobs": True, "n": False},
    "ollama": {"structured": "format", "grammar": False, "logprobs": False, "n": False},
}


def default_report(base_url: str, dialect: str = "openai", **changes: Any) -> DialectReport:
    """The report for a server of a known kind, before anything was refused."""
    fields = {**_DEFAULTS[dialect], **changes}
    return DialectReport(base_url=base_url, dialect=dialect, **fields)


def root_url(base_url: str) -> str:
    """The server's root: the base URL without its trailing ``/v1``."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def _recognise(base_url: str, server: str, models: list[dict[str, Any]], ollama: bool) -> str:
    owners = {str(m.get("owned_by", "")) for m in models}
    if ollama:
        return "ollama"
    if "llama.cpp" in server.lower() or "llamacpp" in owners:
        return "llama-server"
    if "vllm" in owners:
        return "vllm"
    if owners == {"me"} and "uvicorn" in server.lower():  # llama_cpp.server's ModelList
        return "llama-cpp-py"
    return "openai"


def _model_identities(models: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    out = []
    for m in models:
        stable = {k: v for k, v in m.items() if k not in ("created", "modified_at", "expires_at")}
        out.append((str(m.get("id") or m.get("name")), json.dumps(stable, sort_keys=True, default=str)))
    return tuple(out)


def _probe_once(client: Any, base_url: str, check_model: str | None) -> DialectReport:
    """Ask the server what it is: GET /models and, at the root, Ollama's /api/version and /api/tags."""
    import httpx
    import openai

    client = client.with_options(timeout=min(10.0, client.timeout if isinstance(client.timeout, float) else 10.0))
    server, models = "", []
    try:
        resp = client.get("/models", cast_to=httpx.Response)
        server = resp.headers.get("server", "")
        models = list(resp.json().get("data") or [])
    except (openai.APIStatusError, ValueError, AttributeError):
        pass  # no model list (or not JSON): nothing to recognise by
    ollama = False
    try:
        version = client.get(f"{root_url(base_url)}/api/version", cast_to=httpx.Response).json()
        ollama = isinstance(version, dict) and "version" in version
        if ollama:  # Ollama's tags carry each model's digest: the weights' identity
            tags = client.get(f"{root_url(base_url)}/api/tags", cast_to=httpx.Response).json()
            models = [{"id": t.get("name"), "digest": t.get("digest")} for t in tags.get("models", [])] or models
    except (openai.APIStatusError, ValueError, AttributeError):
        pass
    dialect = _recognise(base_url, server, models, ollama)
    report = default_report(base_url, dialect, models=_model_identities(models), detected_by="probe")
    if check_model is not None:
        report = _check(client, report, check_model)
    return report


def _check(client: Any, report: DialectReport, model: str) -> DialectReport:
    """Confirm each capability with a one-token request to ``model``: a constraint the server refuses is
    stepped down; logprobs count only when they come back, ``n`` only when two choices do."""
    import openai

    def send(body: dict[str, Any], url: str = "/chat/completions") -> Any:
        try:
            return client.post(url, body=body, cast_to=object)
        except openai.APIStatusError as e:
            return e

    ask = as_messages("Say yes.")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    for request in (
        Request(ask, json_schema=schema, max_tokens=1),
        Request(ask, grammar='root ::= "yes"', max_tokens=1),
    ):
        call = encode(report, request, model)
        while call.constraint not in (None, "unconstrained"):
            answer = send(call.body, call.url)
            if not (
                isinstance(answer, openai.APIStatusError) and refused(answer.status_code, server_message(answer), call)
            ):
                break
            report = downgrade(report, call)
            call = encode(report, request, model)
    logprobs = n = False
    if report.dialect != "ollama":  # its native API is the one used, and it has neither
        plain = encode(report, Request(ask, max_tokens=1), model).body
        answer = send({**plain, "logprobs": True})
        logprobs = isinstance(answer, dict) and bool((answer["choices"][0].get("logprobs") or {}).get("content"))
        answer = send({**plain, "n": 2})
        n = isinstance(answer, dict) and len(answer.get("choices") or ()) == 2
    return replace(report, logprobs=logprobs, n=n, detected_by="probe", checked=True)


_reports: dict[str, DialectReport] = {}
_reports_lock = threading.Lock()


def known(base_url: str) -> DialectReport | None:
    """The remembered report for ``base_url``, if any (never does I/O)."""
    return _reports.get(base_url.rstrip("/"))


def report_for(client: Any, base_url: str) -> DialectReport:
    """The report for ``base_url``: remembered, or probed now (once per process) and remembered.

    A server that cannot be reached is not remembered: the next call probes again."""
    base_url = base_url.rstrip("/")
    hit = _reports.get(base_url)
    if hit is not None:
        return hit
    import openai

    try:
        report = _probe_once(client, base_url, None)
    except openai.APIConnectionError:
        return default_report(base_url)
    with _reports_lock:
        return _reports.setdefault(base_url, report)


_RANK = {"json_schema": 0, "format": 0, "json_object": 1, None: 2}


def remember(report: DialectReport) -> None:
    """Keep what a refusal taught, merged with what other threads learned meanwhile (only ever down)."""
    with _reports_lock:
        old = _reports.get(report.base_url)
        if old is not None:
            lower = max(old.structured, report.structured, key=_RANK.__getitem__)
            report = replace(report, structured=lower, grammar=report.grammar and old.grammar)
        _reports[report.base_url] = report


def forget(base_url: str | None = None) -> None:
    """Forget one server's report (or all): the next call probes again."""
    with _reports_lock:
        if base_url is None:
            _reports.clear()
        else:
            _reports.pop(base_url.rstrip("/"), None)


def probe(
    base_url: str, *, api_key: str | None = None, model: str | None = None, timeout_s: float = 10.0
) -> DialectReport:
    """Probe a server afresh and say what it speaks. With ``model``, confirm each capability (structured
    output, grammar, logprobs, ``n``) by a one-token request to that model. Remembers the result."""
    import openai

    base_url = base_url.rstrip("/")
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=0)
    try:
        report = _probe_once(client, base_url, model)
    except openai.APIConnectionError as e:
        raise BackendError(f"cannot reach {base_url}: {e}", retryable=True) from e
    finally:
        client.close()
    with _reports_lock:
        _reports[base_url] = report
    return report


# --- one request in a dialect, and its reply ------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One HTTP request: ``url`` relative to the base URL, or absolute (Ollama's native API).

    ``wanted`` is what the request asked to constrain (``"schema"``, ``"grammar"`` or None) and
    ``constraint`` how this call constrains it (the style, ``"grammar"``, or ``"unconstrained"``)."""

    url: str
    body: dict[str, Any]
    wanted: str | None = None
    constraint: str | None = None


def _schema_name(schema: dict[str, Any]) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title", "output")))[:64] or "output"


def _sampling(request: Request, length_key: str) -> dict[str, Any]:
    """The sampling parameters every dialect takes; only the length's name differs."""
    params: dict[str, Any] = {
        length_key: request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    if request.stop:
        params["stop"] = list(request.stop)
    seed = request.seed if request.seed is not None else (request.sample_index if request.temperature > 0 else None)
    if seed is not None:
        params["seed"] = seed
    return params


def encode(report: DialectReport, request: Request, model: str) -> Call:
    """The request as this server takes it."""
    messages = [m.to_dict() for m in request.messages]
    wanted = "schema" if request.json_schema is not None else "grammar" if request.grammar is not None else None
    if report.dialect == "ollama":
        body = {"model": model, "messages": messages, "stream": False, "options": _sampling(request, "num_predict")}
        constraint = None if wanted is None else "unconstrained"
        if wanted == "schema" and report.structured == "format":
            body["format"], constraint = request.json_schema, "format"
        return Call(f"{root_url(report.base_url)}/api/chat", body, wanted, constraint)
    body = {"model": model, "messages": messages, **_sampling(request, "max_tokens")}
    if request.logprobs and report.logprobs:
        body["logprobs"] = True
    constraint = None if wanted is None else "unconstrained"
    schema = request.json_schema
    if schema is not None and report.structured == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(schema), "schema": schema},
        }
        constraint = "json_schema"
    elif schema is not None and report.structured == "json_object":
        body["response_format"] = {"type": "json_object", "schema": schema}
        constraint = "json_object"
    elif request.grammar is not None and report.grammar:
        body["grammar"], constraint = request.grammar, "grammar"
    return Call("/chat/completions", body, wanted, constraint)


def decode(call: Call, data: Any) -> Completion:
    """The server's JSON reply as a ``Completion``; an unconstrained JSON reply is cut out of its text."""
    meta: dict[str, Any] = {} if call.constraint is None else {"constraint": call.constraint}
    if call.url.endswith("/api/chat"):  # Ollama's native reply
        text = (data.get("message") or {}).get("content") or ""
        prompt_tokens, completion_tokens = data.get("prompt_eval_count", 0), data.get("eval_count", 0)
        finish, logprobs = data.get("done_reason") or "stop", None
    else:
        choice = data["choices"][0]
        text = (choice.get("message") or {}).get("content") or ""
        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        finish = choice.get("finish_reason") or "stop"
        content = (choice.get("logprobs") or {}).get("content")
        logprobs = answer_logprobs(content) if content else None
        if data.get("system_fingerprint"):
            meta["system_fingerprint"] = data["system_fingerprint"]
    if call.constraint == "unconstrained" and call.wanted == "schema":
        text = extract_json(text)
    return Completion(text, prompt_tokens or 0, completion_tokens or 0, finish, logprobs, meta=meta)


def extract_json(text: str) -> str:
    """The first JSON object or array in ``text`` (code fences and chatter around it dropped), else the
    text unchanged: the typed call's parse and repair then take over."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            _, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return text[match.start() : end]
    return text


_VALIDATION = re.compile(
    r"validat|invalid|input should|field required|extra (inputs|fields)|not (permitted|supported|allowed)|"
    r"unsupported|unrecognized|unknown (field|param)",
    re.I,
)
_NAMES = {
    "schema": re.compile(r"response_format|json_schema|json_object|schema|format", re.I),
    "grammar": re.compile(r"grammar", re.I),
}


def is_validation_error(status: int | None, message: str) -> bool:
    """A refusal of the request itself: 400 or 422, or a 500 whose body is a validation error."""
    return status in (400, 422) or (status == 500 and bool(_VALIDATION.search(message)))


def refused(status: int | None, message: str, call: Call) -> bool:
    """Whether the server refused this call's constraint (so a plainer form of it may pass)."""
    if call.wanted is None or call.constraint == "unconstrained":
        return False
    return is_validation_error(status, message) and bool(_NAMES[call.wanted].search(message))


def downgrade(report: DialectReport, call: Call) -> DialectReport:
    """One step down from the form ``call`` used: json_schema, then json_object, then none."""
    if call.wanted == "grammar":
        return replace(report, grammar=False, detected_by="refusal")
    step: dict[str | None, str | None] = {"json_schema": "json_object", "json_object": None, "format": None}
    return replace(report, structured=step.get(report.structured), detected_by="refusal")
