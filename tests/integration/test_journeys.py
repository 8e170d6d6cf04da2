"""The README's journeys on the real embedded models, as a new user takes them.

Typed ask with a plain schema (and a reply cut at ``--max-tokens``), a multi-step ``Module``,
``ChainOfThought``, ``SelfConsistency``, ``ToolAgent`` with a denied and an approved tool, ``compound
serve`` with nothing named through the official ``openai`` client, and ``compound scale`` on 20 rows.
The 135M model serves every journey it can; the tool agent needs the 1.5B model to pick tools. Answers
of a 135M model are not always right: the tests assert what the journey guarantees (valid, typed,
counted, refused), not the model's wisdom.
"""

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

import compound
from compound.models.embedded import get_embedded

SMALL, LARGE = compound.get_settings().small, compound.get_settings().large
REVIEW = (
    "Order #4471 arrived two days late. The courier left the box at the wrong door and I had to walk around the "
    "block to find it. Inside, the blender itself was intact, but the lid had a small crack. I emailed support on "
    "Monday and heard back on Thursday; they offered a replacement lid or a 15 percent refund. I took the refund. "
    "The blender works well for smoothies, crushes ice without trouble, and is quieter than my old one. Cleaning "
    "is easy because the blades come out. Still, the delivery experience was frustrating and the support response "
    "was slow. Extract the delivery details from this review."
)
#: an ordinary schema: two properties, required, no additionalProperties (it failed every time when open)
PLAIN = {
    "type": "object",
    "properties": {"delivery_status": {"type": "string"}, "days_late": {"type": "integer"}},
    "required": ["delivery_status", "days_late"],
}


def test_ask_with_a_plain_schema_returns_valid_json_and_a_cut_reply_names_the_cap(compound_cli, tmp_path):
    import jsonschema

    schema = tmp_path / "s.json"
    schema.write_text(json.dumps(PLAIN))
    done = compound_cli("ask", REVIEW, "--model", SMALL, "--schema", schema)
    assert done.returncode == 0, done.stderr
    jsonschema.validate(json.loads(done.stdout), PLAIN)
    cut = compound_cli("ask", REVIEW, "--model", SMALL, "--schema", schema, "--max-tokens", "6")
    assert cut.returncode != 0
    assert "cut at max_tokens=6" in cut.stderr and "--max-tokens 12" in cut.stderr


class Ticket(BaseModel):
    text: str


class Triage(BaseModel):
    category: Literal["billing", "bug", "other"]
    summary: str


class Reply(BaseModel):
    reply: str


class Support(compound.Module):
    """The README's program, with a second step that drafts a reply from the triage."""

    def __init__(self, model=SMALL):
        self.triage = compound.Predict(
            compound.Signature(Ticket, Triage, "Classify the ticket and summarize it."),
            model=model,
            strategy=compound.Repair(3),
            requirements=[compound.Check(lambda t: len(t.summary) < 200, "summary under 200 characters")],
        )
        self.answer = compound.Predict(
            compound.Signature(Triage, Reply, "Write a one-sentence reply to the customer."), model=model
        )

    def forward(self, text):
        triage = self.triage(text=text)
        return triage, self.answer(category=triage.category, summary=triage.summary)


def test_a_multi_step_module_runs_traced_saves_and_loads(tmp_path):
    program = Support()  # as the README writes it: the model by name (a backend object saves as "llama_cpp:NAME", which load refuses as remote)
    with compound.start_run("support") as run:
        triage, reply = program(text="I was charged twice for my order")
    assert triage.category in ("billing", "bug", "other") and len(triage.summary) < 200
    assert reply.reply.strip()
    assert run.usage.total.calls >= 2  # both steps called the model, and the run counted them
    loaded = Support.load(program.save(tmp_path / "support.json"))
    assert loaded.named_parameters().keys() == program.named_parameters().keys()


def test_chain_of_thought_reasons_then_answers_under_the_schema(small_model):
    step = compound.ChainOfThought(compound.Signature(Ticket, Triage), model=small_model, reasoning_tokens=64)
    result = step.result(text="The app crashes when I open the settings page")
    value = result.value
    assert value.category in ("billing", "bug", "other") and value.reasoning
    assert result.calls == 2  # the free-text reasoning, then the typed answer


def test_self_consistency_draws_five_samples_and_votes(small_model):
    vote = compound.Predict(compound.Signature(Ticket, Triage), model=small_model, strategy=compound.SelfConsistency(5))
    result = vote.result(text="I was charged twice")
    assert result.calls == 5 and result.calls_per_candidate == [1, 1, 1, 1, 1]
    assert 0 < result.confidence <= 1 and result.value.category in ("billing", "bug", "other")


def test_tool_agent_runs_the_approved_tool_and_never_the_denied_one():
    import asyncio

    from compound.tools.agent import ToolAgent
    from compound.tools.base import tool
    from compound.tools.policy import Policy

    if not get_embedded(LARGE).installed():
        pytest.fail(f"the large model is not installed: compound models install {LARGE}")
    ran = []

    @tool
    def lookup(order_id: int) -> str:
        """Look up an order's status by its number."""
        ran.append(("lookup", order_id))
        return f"order {order_id}: delivered, paid 40 dollars"

    @tool
    def refund(order_id: int, amount: float) -> str:
        """Refund an amount on an order."""
        ran.append(("refund", order_id))
        return "refunded"

    asked = []

    def approve(name, arguments):
        asked.append(name)
        return True

    policy = Policy().ask("lookup", approve).deny("refund", "refunds need a human")
    agent = ToolAgent([lookup, refund], model=LARGE, policy=policy, max_steps=4, max_tool_calls=3)
    task = "First look up order 7 with the lookup tool, then refund 40 dollars on it with the refund tool."
    result = asyncio.run(agent.arun(task))
    decided = {s.tool: s.decision.allowed for s in result.tool_calls if s.decision is not None}
    assert decided.get("lookup") is True and ("lookup", 7) in ran and "lookup" in asked
    assert decided.get("refund") is False, f"the model never asked for the denied tool: {result.steps}"
    assert all(name != "refund" for name, _ in ran)  # denied: never ran


@contextmanager
def served(*args, home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "COMPOUND_HOME": str(home)}
    proc = subprocess.Popen(
        [str(Path(sys.prefix) / "bin" / "compound"), "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    import httpx

    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if proc.poll() is not None:
                    pytest.fail(f"compound serve ended: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_with_nothing_named_serves_the_embedded_models_to_the_openai_client(isolated_home):
    import httpx
    from openai import OpenAI

    with served(home=isolated_home) as (url, proc):
        health = httpx.get(f"{url}/healthz").json()
        assert SMALL in health["models"] and health["programs"] == []
        client = OpenAI(base_url=f"{url}/v1", api_key="none")
        assert SMALL in [m.id for m in client.models.list().data]
        plain = client.chat.completions.create(
            model=SMALL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16
        )
        assert plain.choices[0].message.content and plain.usage.completion_tokens > 0
        structured = client.chat.completions.create(
            model=SMALL,
            messages=[{"role": "user", "content": REVIEW}],
            response_format={"type": "json_schema", "json_schema": {"name": "delivery", "schema": PLAIN}},
            max_tokens=256,
        )
        import jsonschema

        jsonschema.validate(json.loads(structured.choices[0].message.content), PLAIN)
    said = proc.stderr.read() if proc.stderr else ""
    assert f"models: {SMALL}" in said  # what it serves, said at start-up


def test_serve_streams_through_the_openai_client(isolated_home):
    from compound.models.base import Backend

    if not hasattr(Backend, "astream"):
        pytest.skip("token streaming (Backend.astream, issue 28 item 2) is not on main yet")
    from openai import OpenAI

    # two servers with their own homes: the streamed reply is computed, not replayed from the first's cache
    with served("-m", SMALL, home=isolated_home / "whole") as (url, _):
        client = OpenAI(base_url=f"{url}/v1", api_key="none")
        whole = client.chat.completions.create(
            model=SMALL, messages=[{"role": "user", "content": "Name three fruits."}], max_tokens=24, seed=1
        )
    with served("-m", SMALL, home=isolated_home / "streamed") as (url, _):
        client = OpenAI(base_url=f"{url}/v1", api_key="none")
        chunks = client.chat.completions.create(
            model=SMALL,
            messages=[{"role": "user", "content": "Name three fruits."}],
            max_tokens=24,
            seed=1,
            stream=True,
        )
        deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(deltas) > 1 and "".join(deltas) == whole.choices[0].message.content


def test_scale_on_20_rows(compound_cli, tmp_path):
    good = ["loved it", "great value", "works perfectly", "friendly staff", "fast delivery"]
    bad = ["broke at once", "rude staff", "late and damaged", "a waste of money", "never again"]
    rows = [
        {"text": f"Review {i}: {(good if i % 2 else bad)[i % 5]}.", "label": "positive" if i % 2 else "negative"}
        for i in range(20)
    ]
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "scale.json"
    done = compound_cli(
        "scale",
        "--data",
        data,
        "--input",
        "text",
        "--label",
        "label",
        "--limit",
        "20",
        "--ns",
        "1,2,4",
        "--json",
        out,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert [r["n"] for r in result["rows"]] == [1, 2, 4]
    assert all(0 <= r["accuracy"] <= 1 and r["calls"] >= 20 for r in result["rows"])
    assert result["recommended_n"] in (1, 2, 4)
