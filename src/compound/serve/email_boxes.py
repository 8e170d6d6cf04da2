"""Short boxes for the email writer's distillation, invented by a teacher model.

A box is what a user types on the Write page: who the email is to, what it is about and the tone, in a
few words ("Ana, lunch moved to Friday, warm"). ``invent_boxes`` has the teacher write each one for a
(recipient, topic, tone) drawn from the seeded lists below, so boxes cannot collapse into one kind.

Guarantees:
- the draws are a pure function of the seed: every (recipient, topic, tone) combination once, in a
  seeded order, before any repeats;
- each box is one teacher call through the response cache (at ``sample_index`` = its draw), so a rerun
  of the same command gets the same boxes back at no cost;
- near-copies (word-set Jaccard >= ``SIMILAR``, the distill pipeline's ``dedupe``) and boxes that are
  empty or too long are dropped; at most ``2 * count + 10`` calls are made, and fewer boxes than asked
  for is said by the caller, never padded.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from pydantic import BaseModel, Field

from compound.core.concurrency import gather
from compound.core.errors import OutputParseError
from compound.core.progress import Progress
from compound.optimize.distill.data import dedupe

RECIPIENTS = [
    "a colleague, Ana",
    "your manager, Priya",
    "a client, Mr. Okafor",
    "the whole team",
    "a friend, Tom",
    "your landlord, Mrs. Silva",
    "a professor, Dr. Lee",
    "a neighbour, Sam",
    "a supplier, Greenleaf Ltd",
    "a new hire, Jonas",
    "a customer, Mei",
    "your sister, Clara",
    "the school office",
    "a recruiter, Daniel",
    "the IT helpdesk",
]
TOPICS = [
    "a meeting that moved to another day",
    "an invoice that is overdue",
    "thanks for help on a project",
    "declining an invitation",
    "asking for a deadline extension",
    "an invitation to a party",
    "a delivery that is late",
    "a lost key or badge",
    "booking a room",
    "sharing a report for review",
    "a price increase",
    "a sick day",
    "welcoming someone to the team",
    "a broken appliance that needs fixing",
    "asking for a reference letter",
    "a change of address",
    "a refund request",
    "a reminder about a payment",
    "congratulations on a promotion",
    "a follow-up after an interview",
]
TONES = ["warm", "formal", "brief", "apologetic", "firm", "cheerful", "grateful", "urgent", "friendly", "polite"]
SIMILAR = 0.6  # word-set Jaccard at or above which two boxes are near-copies
MAX_WORDS = 25

PROMPT = (
    "Write what a busy person would type into a small box to have an email drafted for them: who it is to, "
    "what it is about with one or two concrete details (a day, a time, an amount, a place), and the tone, "
    "as a short comma-separated note of at most 15 words, not a sentence and not an email. "
    "Examples: 'Ana, lunch moved to Friday, warm' or 'landlord, heater broken since Monday, firm'.\n\n"
    "To: {recipient}\nAbout: {topic}\nTone: {tone}"
)


class InventedBox(BaseModel):
    box: str = Field(max_length=200, description="the short note, e.g. 'Ana, lunch moved to Friday, warm'")


def draws(seed: int) -> list[tuple[str, str, str]]:
    """Every (recipient, topic, tone) once, in the seed's order."""
    combos = list(itertools.product(RECIPIENTS, TOPICS, TONES))
    random.Random(seed).shuffle(combos)
    return combos


async def invent_boxes(teacher: Any, count: int, seed: int = 0, progress: bool = False) -> list[dict[str, Any]]:
    """Up to ``count`` distinct boxes ``{box, recipient, topic, tone}`` written by ``teacher``."""
    from compound.models.typed import acall_typed

    plan = draws(seed)[: 2 * count + 10]
    kept: list[dict[str, Any]] = []
    bar = Progress(progress, "inventing boxes", count, unit="boxes")
    written = [0]

    async def one(i: int, recipient: str, topic: str, tone: str) -> dict[str, Any] | None:
        prompt = PROMPT.format(recipient=recipient, topic=topic, tone=tone)
        try:
            reply = await acall_typed(
                InventedBox, prompt, model=teacher, temperature=0.8, sample_index=i, max_tokens=80
            )
        except OutputParseError:  # a reply that never parsed is a box not made: a later draw replaces it
            return None
        box = " ".join(reply.value.box.split()).strip(" '\"")
        if not (3 <= len(box) and len(box.split()) <= MAX_WORDS):
            return None
        written[0] += 1  # boxes written so far, before near-copies are dropped at the end of the round
        bar.update(done=min(count, len(kept) + written[0]))
        return {"box": box, "recipient": recipient, "topic": topic, "tone": tone}

    try:
        start = 0
        while len(kept) < count and start < len(plan):
            chunk = plan[start : start + max(1, count - len(kept))]
            written[0] = 0
            made = await gather(one(start + j, *combo) for j, combo in enumerate(chunk))
            start += len(chunk)
            fresh = [m for m in made if m is not None]
            new = [
                fresh[i] for i in dedupe([{"box": m["box"]} for m in fresh], [{"box": k["box"]} for k in kept], SIMILAR)
            ]
            kept += new[: count - len(kept)]
            bar.update(done=len(kept))
    finally:
        bar.stop()
    return kept
