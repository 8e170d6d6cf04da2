"""The typed program route, OpenAPI schemas, keys and budgets, limits, health and metrics."""

import httpx
import pytest
from serve_programs import make_programs

from compound.serve.app import create_app
from compound.serve.background import BackgroundServer
from compound.serve.keys import KeyStore, new_key, read_key_file, write_key_file


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_program_route_is_typed_in_openapi_and_runs(server):
    url, secrets = server
    doc = httpx.get(f"{url}/openapi.json").json()
    op = doc["paths"]["/v1/programs/write_email/run"]["post"]
    req_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert doc["components"]["schemas"][req_ref]["properties"]["box"]["type"] == "string"
    resp_ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    out = doc["components"]["schemas"][resp_ref]["properties"]
    assert "output" in out and "compound" in out
    assert set(doc["components"]["schemas"]["EmailDraft"]["properties"]) == {"subject", "greeting", "body", "sign_off"}

    r = httpx.post(
        f"{url}/v1/programs/write_email/run",
        json={"box": "Ana, lunch moved to Friday, warm"},
        headers=auth(secrets["alice"]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"]["greeting"] == "Hi Ana," and "12:30" not in body["output"]["body"]
    assert body["compound"]["strategy"]["candidates"] == 2 and body["compound"]["usage"]["calls"] == 2


@pytest.mark.parametrize(
    "path, kwargs, status, words",
    [
        (
            "/v1/chat/completions",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        (
            "/v1/chat/completions",
            {"json": {"model": "echo", "messages": [{"role": "user", "content": "x" * 30_000}]}},
            413,
            "over 20000 bytes",
        ),
        (
            "/v1/chat/completions",
            {"json": {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}},
            404,
            "no served program or model",
        ),
        ("/v1/chat/completions", {"json": {"model": "echo", "messages": []}}, 422, "messages"),
        (
            "/v1/chat/completions",
            {
                "json": {
                    "model": "echo",
                    "messages": [{"role": "user", "content": "x"}],
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"type": "nonsense"}},
                    },
                }
            },
            400,
            "not a valid JSON Schema",
        ),
        ("/v1/programs/write_email/run", {"json": {"wrong": "field"}}, 422, "box"),
        ("/v1/programs/qa/run", {"json": {"question": 3}}, 422, "question"),
        (
            "/v1/chat/completions",
            {"json": {"model": "qa", "messages": [{"role": "user", "content": "x"}], "n": 2}},
            400,
            "chooses its own sampling",
        ),
        (
            "/v1/chat/completions",
            {
                "json": {
                    "model": "echo",
                    "messages": [{"role": "user", "content": "x"}],
                    "tools": [{"type": "function"}],
                }
            },
            400,
            "tools",
        ),
    ],
)
def test_bad_requests_get_a_clear_4xx(server, path, kwargs, status, words):
    url, secrets = server
    headers = {**auth(secrets["alice"]), **kwargs.pop("headers", {})}
    r = httpx.post(f"{url}{path}", headers=headers, **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]


def test_keys_are_required_and_hashed(server, isolated_home, tmp_path):
    url, secrets = server
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 401
    assert httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth("sk-nope")).status_code == 401
    key, secret = new_key("bob", tokens=100)
    path = tmp_path / "keys.json"
    write_key_file(path, [key])
    text = path.read_text()
    assert secret not in text and key.hash in text  # only the salted hash is at rest
    (back,) = read_key_file(path)
    assert back.matches(secret) and not back.matches(secret + "x") and back.limits["tokens"] == 100


def test_daily_call_budget_refuses_with_retry_after_and_persists(server, isolated_home):
    url, secrets = server
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}]}
    codes = [httpx.post(f"{url}/v1/chat/completions", json=body, headers=auth(secrets["capped"])) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["Retry-After"]) > 0 and "3 calls for today" in codes[-1].json()["error"]["message"]
    store = KeyStore.at(isolated_home / "serve.sqlite")
    assert store.usage_today("capped")["calls"] == 3
    metrics = httpx.get(f"{url}/metrics").text
    assert "compound_budget_refusals_total 1.0" in metrics


def test_token_budget_is_never_exceeded(isolated_home):
    store = KeyStore(isolated_home / "serve.sqlite")
    key, secret = new_key("small", tokens=1000)  # a call reserves its prompt plus max_tokens (512) up front
    store.set_keys([key])
    with BackgroundServer(create_app(make_programs(), {}, store, ui=False)) as url:
        statuses = [
            httpx.post(f"{url}/v1/programs/qa/run", json={"question": f"q{i}"}, headers=auth(secret)).status_code
            for i in range(15)
        ]
    assert statuses[0] == 200 and 429 in statuses
    used = store.usage_today("small")
    # refused only once less than one worst case (~560 tokens) was left, and never over the limit
    assert 1000 - 600 < used["prompt_tokens"] + used["completion_tokens"] <= 1000


def test_health_and_metrics(server):
    url, secrets = server
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "programs": ["qa", "write_email"], "models": ["echo"]}
    for _ in range(2):
        httpx.post(f"{url}/v1/programs/qa/run", json={"question": "q"}, headers=auth(secrets["alice"]))
    text = httpx.get(f"{url}/metrics").text
    assert 'compound_requests_total{route="/v1/programs/run",status="200"} 2.0' in text
    assert 'compound_request_seconds_count{route="/v1/programs/run"} 2.0' in text
    assert 'compound_tokens_total{kind="completion"}' in text and "compound_energy_joules_total" in text
    assert "compound_cache_hits_total 1.0" in text  # the second identical call came from the cache


def test_ui_pages_show_jobs_runs_and_refuse_unknown(server):
    import json

    from compound.core.usage import Usage
    from compound.tables.jobs import job_store

    url, _ = server
    store = job_store()
    store.create("job-ui", {"op": "classify", "input": "in.csv", "out": "out.csv"}, "fp", 4)
    usage = json.dumps(Usage(calls=1, prompt_tokens=10, completion_tokens=5, cost_usd=0.25, energy_j=3.0).to_dict())
    store.commit("job-ui", [("0", "{}", usage), ("1", "{}", usage)])
    store.set_status("job-ui", "stopped")
    page = httpx.get(f"{url}/ui/jobs").text
    assert "job-ui" in page and "2/4" in page and "compound table --resume job-ui" in page
    assert "0.5000" in page and "6.0" in page  # cost and joules so far: two rows of $0.25 and 3 J
    assert httpx.get(f"{url}/ui/runs/nope").status_code == 404
    assert httpx.get(f"{url}/ui/reports/nope").status_code == 404
    assert httpx.get(f"{url}/ui", follow_redirects=True).url.path == "/ui/runs"
