"""Support triage: a multi-step program with retrieval, typed steps, requirements and a guarded tool.

For each ticket it (1) retrieves the policy snippets that apply (BM25), (2) classifies the ticket,
(3) extracts typed fields, (4) asks for a refund through a tool that needs permission (a callback
stands in for the human who approves refunds; over 50 dollars it says no), and (5) drafts a reply that
must mention the order number and stay short (MUST) and should not promise what policy does not allow
(SHOULD), repaired until it does. Everything lands in one run: ``compound traces show RUN``.

    python examples/support_triage.py [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Literal

from pydantic import BaseModel, Field

import compound
from compound import (
    SHOULD,
    BM25Retriever,
    Check,
    Document,
    Module,
    Policy,
    Predict,
    Regex,
    Repair,
    Retrieve,
    Signature,
    guarded_call,
    tool,
)

POLICIES = [
    Document("refund-window", "Refunds are possible within 30 days of delivery, to the original payment method."),
    Document("refund-approval", "Refunds above 50 dollars need approval from a team lead."),
    Document("shipping", "Standard shipping takes 3 to 5 business days. Express takes 1 business day."),
    Document("damaged", "For damaged items, ask for a photo; we send a replacement at no cost."),
    Document("password", "Password resets are done from the login page with the 'Forgot password' link."),
]

TICKETS = [
    "Hi, order 10231 arrived broken. The mug is cracked. Can I get my 18 dollars back?",
    "My package for order 55120 is late, it has been 8 days. Where is it?",
    "I want a refund of 120 dollars for order 77812, the jacket does not fit.",
    "I can't log in, I forgot my password. My last order was 43001.",
]


class Ticket(BaseModel):
    ticket: str
    policies: str = Field(description="policy snippets that may apply")


class Category(BaseModel):
    category: Literal["refund", "shipping", "damaged", "account", "other"]


class Fields(BaseModel):
    order_id: str = Field(description="the order number, digits only")
    amount_usd: float | None = Field(description="the amount the customer asks back, if any")


class Draft(BaseModel):
    reply: str


@tool
def issue_refund(order_id: str, amount_usd: float) -> str:
    """Refund an order to the original payment method."""
    return f"refund of {amount_usd:.2f} USD issued for order {order_id}"


def team_lead(tool_name: str, arguments: dict) -> bool:
    """Stands in for the human approver: small refunds are fine, large ones are not."""
    return arguments["amount_usd"] <= 50


def mentions_order(draft: Draft, inputs: dict) -> bool:
    order = re.search(r"\b\d{5}\b", inputs["ticket"])
    return order is None or order.group(0) in draft.reply


class SupportTriage(Module):
    def __init__(self, model=None, retriever=None):
        self.retrieve = Retrieve(retriever or BM25Retriever(POLICIES), k=2)
        self.classify = Predict(Signature(Ticket, Category, "Classify the support ticket."), model=model, max_tokens=20)
        self.extract = Predict(
            Signature(Ticket, Fields, "Extract the order number and the amount asked back."),
            model=model,
            max_tokens=100,
        )
        self.draft = Predict(
            Signature(Ticket, Draft, "Write a short, polite reply to the customer that follows the policies."),
            model=model,
            max_tokens=300,
            strategy=Repair(3),
            requirements=[
                Check(mentions_order, "the reply mentions the order number"),
                Check(lambda d: len(d.reply) <= 600, "the reply is at most 600 characters"),
                Regex(
                    r"(?i)^(?!.*\bguarantee).*$",
                    field="reply",
                    level=SHOULD,
                    description="the reply makes no guarantees",
                ),
            ],
        )
        self.policy = Policy().ask(
            "issue_refund", team_lead, lambda a: a["amount_usd"] > 0 or "amount must be positive"
        )

    async def aforward(self, ticket: str) -> dict:
        snippets = "\n".join(await self.retrieve.acall(query=ticket))
        category = (await self.classify.acall(ticket=ticket, policies=snippets)).category
        fields = await self.extract.acall(ticket=ticket, policies=snippets)
        refund = None
        if category in ("refund", "damaged") and fields.amount_usd:
            decision, observation = await guarded_call(
                issue_refund, {"order_id": fields.order_id, "amount_usd": fields.amount_usd}, self.policy
            )
            refund = {"allowed": decision.allowed, "observation": observation}
            snippets += f"\nRefund tool: {json.dumps(observation)}"
        result = await self.draft.arun(ticket=ticket, policies=snippets)  # every draft and its checks, as data
        reply = result.value.reply if result.value is not None else None
        return {
            "category": category,
            "order_id": fields.order_id,
            "amount_usd": fields.amount_usd,
            "refund": refund,
            "reply": reply,
            "reply_checks": result.note,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="default: the embedded small model")
    args = p.parse_args()
    program = SupportTriage(model=args.model)
    with compound.start_run("support_triage") as run:
        for ticket in TICKETS:
            try:
                out = compound.run_sync(program.acall(ticket=ticket))
            except compound.OutputParseError as e:  # a step's reply never parsed: report it, keep going
                out = {"error": str(e).splitlines()[0], "raw_reply": e.raw_text[:200]}
            print(json.dumps({"ticket": ticket, **out}, indent=2))
    u = run.usage.physical
    print(f"{u.calls} calls, {u.total_tokens} tokens, {u.cpu_s:.1f} s CPU, {u.energy_j:.0f} J (estimated)")
    print(f"audit trail: compound traces show {run.id}")


if __name__ == "__main__":
    main()
