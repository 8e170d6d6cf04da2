"""The support-triage example on the scripted backend: the program's wiring, not the model's quality."""

import json
import re
import sys
from pathlib import Path

import compound
from compound import ScriptedBackend
from compound.store.traces import trace_store

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import support_triage  # noqa: E402


def fake(request):
    title = request.json_schema["title"] if request.json_schema else ""
    ticket = request.messages[-1].content
    order = re.search(r"\d{5}", ticket)
    amount = re.search(r"(\d+) dollars", ticket)
    if title == "Category":
        return json.dumps({"category": "refund" if "refund" in ticket or "back" in ticket else "other"})
    if title == "Fields":
        return json.dumps(
            {"order_id": order.group(0) if order else "", "amount_usd": float(amount.group(1)) if amount else None}
        )
    if title == "Draft":
        if "does not meet" in ticket:  # the repair turn: now mention the order
            return json.dumps(
                {
                    "reply": "Sorry about order "
                    + re.search(r"\d{5}", " ".join(m.content for m in request.messages)).group(0)
                }
            )
        return json.dumps({"reply": "Thanks for writing, we guarantee a fix."})
    raise AssertionError(f"unexpected request {title!r}")


def test_triage_guards_the_refund_tool_and_repairs_the_draft():
    program = support_triage.SupportTriage(model=ScriptedBackend(fake))
    with compound.start_run("triage") as run:
        small = program(ticket=support_triage.TICKETS[0])
        large = program(ticket=support_triage.TICKETS[2])
    assert small["refund"]["allowed"] and "issued" in small["refund"]["observation"]
    assert not large["refund"]["allowed"] and large["refund"]["observation"] == {"denied": "refused by callback"}
    assert "10231" in small["reply"] and "77812" in large["reply"]
    spans = trace_store().run_spans(run.id)
    assert [s["attrs"]["arguments"]["order_id"] for s in spans if s["kind"] == "tool"] == [
        "10231"
    ]  # the denied refund never ran
    assert {s["name"] for s in spans if s["kind"] == "step"} >= {"Retrieve", "SupportTriage"}
    candidates = [s for s in spans if s["kind"] == "candidate"]
    assert len([c for c in candidates if c["attrs"]["strategy"] == "repair"]) == 4  # two drafts, each repaired once
    assert all(c["attrs"]["calls"] == 1 for c in candidates)  # every candidate took one call
