"""What optimizing a whole program buys: a multi-step support-triage program before and after
``BootstrapFewShot`` and ``JointSearch``, on held-out tickets, quality and cost per row side by side.

    python benchmarks/optimize_program.py --smoke                        # scripted models, seconds (CI)
    nice -n 19 python benchmarks/optimize_program.py --threads 1 --train 16 --val 12 --test 24 \\
        --json out/optimize_program.json

The program is ``examples/support_triage.py``'s first steps: retrieve the policy snippets (BM25), classify
the ticket, extract its order number and the amount asked back (its reply drafting, a ``Repair`` loop of
up to 300-token drafts, is left out: its quality has no gold here and it would dominate the cost). The
tickets are written by templates with a seeded generator (the category, order number and amount are
known); the held-out tickets come from *other* templates than the ones optimized on, so a gain is not a
memorised phrasing. The score of a row is the share of its three fields the program got right.

Every configuration answers the same held-out rows with the response cache off (every answer a fresh
call, measured now; ``--reference`` adds the teacher model running the program as it is, the ceiling). Per row: quality, CPU seconds, calls and prompt tokens; once: what the optimizer
spent (CPU, calls) beside its forecast. The student is the settings' small model, the teacher and
proposer the medium one; ``--threads`` sets llama.cpp's threads. ``--smoke`` runs scripted models with
latency (a student right on a field only when shown demos or told how): it checks the machinery.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "examples"))
from _common import parse, parser, report  # noqa: E402
from support_triage import POLICIES, Category, Fields, Ticket  # noqa: E402

import compound  # noqa: E402
from compound import BM25Retriever, Module, Predict, Retrieve, Signature  # noqa: E402

# --- tickets: per category, templates 0-2 are optimized on, 3-4 only ever held out ----------------------
TEMPLATES: dict[str, list[str]] = {
    "refund": [
        "Hello, I would like my money back for order {order}. It was {amount} dollars and I changed my mind.",
        "Please refund order {order}, the {product} is not what I expected. I paid {amount} dollars.",
        "Order {order}: I returned the {product} last week, where is my refund of {amount} dollars?",
        "Can you give me back the {amount} dollars I spent on order {order}? I no longer need the {product}.",
        "I want to cancel order {order} and be refunded {amount} dollars for the {product}.",
    ],
    "shipping": [
        "My order {order} still has not arrived after {days} days. Where is my {product}?",
        "Tracking for order {order} has not moved in {days} days, when will the {product} ship?",
        "Order {order} was supposed to come by express, it has been {days} days.",
        "Is order {order} lost? The {product} should have been delivered {days} days ago.",
        "When does order {order} get here? I ordered the {product} {days} days ago.",
    ],
    "damaged": [
        "Order {order} arrived broken, the {product} is cracked. I want {amount} dollars back.",
        "The {product} from order {order} came damaged in the box. Please return my {amount} dollars.",
        "My {product} (order {order}) was smashed when it arrived; refund the {amount} dollars please.",
        "Order {order}: the {product} is dented and scratched on arrival. It cost {amount} dollars.",
        "The {product} in order {order} is torn, it was delivered that way. I paid {amount} dollars.",
    ],
    "account": [
        "I cannot log in to my account, I forgot my password. My last order was {order}.",
        "Please reset my password, I am locked out. Order {order} is on this account.",
        "My account email changed and I can't sign in anymore; I had order {order}.",
        "The login page says my password is wrong. I need to check order {order}.",
        "How do I change the password of my account? I placed order {order} with it.",
    ],
    "other": [
        "Do you sell gift cards? I liked the {product} from order {order}.",
        "Can I get an invoice with my company name for order {order}?",
        "Which colours does the {product} come in? I bought one in order {order}.",
        "Is there a discount for a second {product}? My first was order {order}.",
        "Do you have a shop in Lyon? I want to see the {product} from order {order} in person.",
    ],
}
PRODUCTS = ["mug", "jacket", "lamp", "kettle", "backpack", "chair", "scarf", "blender", "desk", "headset"]
WITH_AMOUNT = {"refund", "damaged"}


def tickets(n: int, templates: range, seed: int) -> list[dict[str, Any]]:
    """``n`` tickets with their gold fields, categories in turn, each from one of ``templates`` (indices)."""
    rng = random.Random(seed)
    rows = []
    cats = list(TEMPLATES)
    for i in range(n):
        cat = cats[i % len(cats)]
        order = str(rng.randint(10000, 99999))
        amount = rng.choice([12, 18, 25, 39, 45, 60, 89, 120, 150])
        text = TEMPLATES[cat][rng.choice(templates)].format(
            order=order, amount=amount, product=rng.choice(PRODUCTS), days=rng.randint(6, 15)
        )
        rows.append(
            {"ticket": text, "category": cat, "order_id": order, "amount_usd": amount if cat in WITH_AMOUNT else None}
        )
    return rows


# --- the program ----------------------------------------------------------------------------------------
class Triage(Module):
    """Retrieve the policies, classify the ticket, extract its fields (support_triage.py's first steps)."""

    def __init__(self, model: Any = None) -> None:
        self.retrieve = Retrieve(BM25Retriever(POLICIES), k=2)
        self.classify = Predict(Signature(Ticket, Category, "Classify the support ticket."), model=model, max_tokens=20)
        self.extract = Predict(
            Signature(Ticket, Fields, "Extract the order number and the amount asked back."), model=model, max_tokens=60
        )

    async def aforward(self, ticket: str) -> dict[str, Any]:
        snippets = "\n".join(await self.retrieve.acall(query=ticket))
        category = await self.classify.acall(ticket=ticket, policies=snippets)
        fields = await self.extract.acall(ticket=ticket, policies=snippets)
        return {"category": category.category, "order_id": fields.order_id, "amount_usd": fields.amount_usd}


def fields_right(example: dict[str, Any], prediction: dict[str, Any] | None) -> dict[str, bool]:
    if prediction is None:
        return {"category": False, "order_id": False, "amount_usd": False}
    want, got = example["amount_usd"], prediction["amount_usd"]
    amount = (not want and not got) or (want is not None and got is not None and abs(float(got) - want) < 0.01)
    order = re.sub(r"\D", "", str(prediction["order_id"])) == example["order_id"]
    return {"category": prediction["category"] == example["category"], "order_id": order, "amount_usd": amount}


def metric(example: dict[str, Any], prediction: Any) -> float:
    right = fields_right(example, prediction)
    return sum(right.values()) / len(right)


# --- scripted models for --smoke ----------------------------------------------------------------------------
def _scripted(rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """A teacher that knows every ticket's fields; a student that gets the category right only when shown
    demos and the amount only when told it is in dollars; both write instruction proposals."""
    gold = {r["ticket"]: r for r in rows}

    def answer(request: Any, teacher: bool) -> str:
        last = request.messages[-1].content
        if "instructions of one step" in last:
            what = "amount in dollars" if "It writes: order_id" in last else "category"
            return json.dumps({"instructions": f"Read the ticket and answer the {what} it states."})
        row = gold[re.search(r"ticket: (.*)", last).group(1)]  # type: ignore[union-attr]
        system = request.messages[0].content
        if "order_id" not in system:  # the classify step
            shown = teacher or any(m.role == "assistant" for m in request.messages)
            return json.dumps({"category": row["category"] if shown else "other"})
        told = teacher or "dollars" in system
        return json.dumps({"order_id": row["order_id"], "amount_usd": row["amount_usd"] if told else None})

    student = compound.ScriptedBackend(lambda r: answer(r, False), model="triage-student", latency_s=0.01)
    teacher = compound.ScriptedBackend(lambda r: answer(r, True), model="triage-teacher", latency_s=0.02)
    return student, teacher


# --- measuring ----------------------------------------------------------------------------------------------
async def score(program: Module, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every row answered with a fresh call (cache off): quality per field and cost per row."""
    from compound.core.settings import configured
    from compound.optimize.base import aevaluate

    with configured(cache=False), compound.track_usage() as usage:
        scored = await aevaluate(program, rows, metric)
    n = len(rows)
    right = [fields_right(r, p) for r, p in zip(rows, scored.predictions, strict=True)]
    u = usage.physical
    return {
        "quality": scored.score,
        **{f"{k}_acc": sum(x[k] for x in right) / n for k in ("category", "order_id", "amount_usd")},
        "cpu_s_per_row": u.cpu_s / n,
        "calls_per_row": u.calls / n,
        "prompt_tokens_per_row": u.prompt_tokens / n,
    }


def optimizers(args: Any, teacher: Any) -> dict[str, Any]:
    from compound import BootstrapFewShot, JointSearch

    made = {
        "bootstrap": BootstrapFewShot(teacher, max_demos=args.demos, candidates=args.demo_sets),
        "joint": JointSearch(
            teacher,
            instructions=args.instructions,
            demo_sets=args.demo_sets,
            max_demos=args.demos,
            trials=args.trials,
            minibatch=args.minibatch,
            full_every=args.full_every,
        ),
    }
    return {k: made[k] for k in args.optimizers.split(",")}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=16, help="tickets the optimizers learn from (templates 0-2)")
    p.add_argument("--val", type=int, default=12, help="tickets the optimizers score candidates on (templates 0-2)")
    p.add_argument("--test", type=int, default=24, help="held-out tickets (templates 3-4, never optimized on)")
    p.add_argument("--student", default=None, help="default: the settings' small model")
    p.add_argument("--teacher", default=None, help="default: the settings' medium model")
    p.add_argument("--optimizers", default="bootstrap,joint")
    p.add_argument("--demos", type=int, default=3)
    p.add_argument("--demo-sets", type=int, default=3)
    p.add_argument("--instructions", type=int, default=2)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--minibatch", type=int, default=6)
    p.add_argument("--full-every", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads (the machine is shared: keep 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", action="store_true", help="also score the teacher model running the program")
    args = parse(p, train=6, val=5, test=5, trials=3, minibatch=3, reference=True)
    settings = compound.get_settings()
    compound.configure(n_threads=args.threads)
    train = tickets(args.train, range(3), args.seed)
    val = tickets(args.val, range(3), args.seed + 1)
    test = tickets(args.test, range(3, 5), args.seed + 2)
    if args.smoke:
        student, teacher = _scripted(train + val + test)
    else:
        student, teacher = args.student or settings.small, args.teacher or settings.medium
    program = Triage(student)
    results = {"before": compound.run_sync(score(program, test))}
    extra: dict[str, dict[str, Any]] = {"before": {}}
    if args.reference:  # the ceiling: the teacher model answering as the program is, at its own cost
        results["teacher_model"] = compound.run_sync(score(Triage(teacher), test))
        extra["teacher_model"] = {}
    for name, optimizer in optimizers(args, teacher).items():
        forecast = optimizer.forecast(program, train, val)
        print(f"{name}: forecast {forecast}", flush=True)
        tuned = optimizer.compile(program, train, val, metric=metric)
        spent = optimizer.report["usage"]
        results[name] = compound.run_sync(score(tuned, test))
        extra[name] = {
            "one_time_cpu_s": spent["cpu_s"],
            "one_time_calls": spent["calls"],
            "forecast_calls": forecast.get("calls", forecast["step_calls"]),
            "valset_score": optimizer.report.get("best_score"),
            "stopped": optimizer.report.get("stopped"),
            "demos": {path or "(program)": len(step.demos) for path, step in _steps(tuned)},
            "instructions": {path: step.instructions for path, step in _steps(tuned)},
        }
    before = results["before"]
    rows = [
        {
            "config": name,
            **r,
            "cpu_x_before": r["cpu_s_per_row"] / before["cpu_s_per_row"] if before["cpu_s_per_row"] else float("nan"),
            "one_time_cpu_s": extra[name].get("one_time_cpu_s", 0.0),
            "one_time_calls": extra[name].get("one_time_calls", 0),
            "forecast_calls": extra[name].get("forecast_calls", 0),
        }
        for name, r in results.items()
    ]
    summary = {
        "student": getattr(student, "model_id", student),
        "teacher": getattr(teacher, "model_id", teacher),
        "threads": args.threads,
        "train": args.train,
        "val": args.val,
        "test": args.test,
        "held_out": "templates 3-4 of each category (optimized on templates 0-2)",
        "chosen": {
            k: {m: v for m, v in e.items() if m in ("demos", "instructions", "valset_score", "stopped")}
            for k, e in extra.items()
            if e
        },
    }
    report("optimize_program: support triage before and after, held-out tickets", rows, summary, args.json)


def _steps(program: Module) -> list[tuple[str, Any]]:
    from compound.optimize.base import steps

    return steps(program)


if __name__ == "__main__":
    main()
