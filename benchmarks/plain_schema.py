"""Plain JSON schemas on the smallest embedded model: ``compound ask --schema`` on 20 varied prompts and schemas.

    python benchmarks/plain_schema.py --json out.json            # 20 cases
    python benchmarks/plain_schema.py --smoke                     # 2 cases (CI)

Each case is a text of about 200 tokens written here (a review, an e-mail, a listing, a bug report ...)
and an extraction question, with an ordinary user-written schema: two to four properties, ``required``,
no ``additionalProperties``. Two sides, one after the other, on the same cases:

- ``compound ask``: the installed console script in a subprocess, as a user runs it (``--model
  smollm2-135m --schema s.json``, greedy, ``--max-tokens 256``): the schema is decoded closed, strings
  are bounded, and a reply that fails gets one repair. Valid = exit status 0 and stdout is JSON that
  the user's own schema (as written) accepts.
- ``open schema``: the same call in process with the schema exactly as written: not closed, no string or
  array bounds, no repair (what every such call did before schemas were closed and guarded).

Reported per side: valid replies out of the cases, replies cut at ``max_tokens``, and mean completion
tokens; wall seconds per case for the CLI include starting Python and loading the model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import parse, parser, report

MODEL = "smollm2-135m"
MAX_TOKENS = 256

TEXTS = {
    "espresso": (
        "I bought the Breville Barista Express espresso machine three months ago after my old drip coffee maker "
        "died. Setting it up took about twenty minutes, and the manual was clear enough, although the tamper that "
        "comes in the box feels cheap and plasticky. The built-in grinder is the real star: it is consistent and "
        "the dose is easy to adjust. Steaming milk took some practice, but after a week I was pouring decent "
        "lattes. On the downside, the drip tray fills up quickly and the water tank is awkward to remove when the "
        "machine sits under a cabinet. Customer support answered my question about descaling within a day. "
        "Overall I am happy with it and would buy it again, though I wish the accessories matched the machine."
    ),
    "blender": (
        "Order #4471 arrived two days late. The courier left the box at the wrong door and I had to walk around "
        "the block to find it. Inside, the blender itself was intact, but the lid had a small crack. I emailed "
        "support on Monday and heard back on Thursday; they offered a replacement lid or a 15 percent refund. I "
        "took the refund. The blender works well for smoothies, crushes ice without trouble, and is quieter than "
        "my old one. Cleaning is easy because the blades come out. Still, the delivery experience was "
        "frustrating and the support response was slow. I paid 89 dollars for it on sale, and I would probably "
        "not order from this shop again, even if the product itself is fine."
    ),
    "hotel": (
        "We stayed four nights at the Harbour View Hotel in Lisbon in late September. The room on the sixth floor "
        "had a small balcony facing the river, and the bed was comfortable, but the air conditioning rattled all "
        "night and the shower drained slowly. Breakfast was the highlight: fresh pastries, good coffee and fruit, "
        "served until eleven. The staff at the front desk spoke English and Portuguese and booked us a tram tour. "
        "The hotel is a ten minute walk from the old town, uphill on the way back. We paid 140 euros a night, which "
        "felt fair for the location. Wi-Fi was weak in the room. I would stay again, but I would ask for a quieter "
        "room away from the lift."
    ),
    "job": (
        "Greenfield Analytics is hiring a junior data engineer for its office in Leeds, with two days a week of "
        "remote work. You will build and maintain the pipelines that load sales data from our retail partners "
        "into the warehouse, write SQL and Python every day, and help the analysts when a report looks wrong. We "
        "use PostgreSQL, Airflow and dbt. You should have one or two years of experience, or a degree and a "
        "project you can show us. The salary is 32,000 to 36,000 pounds a year, with 25 days of holiday and a "
        "pension. Applications close on the 15th of March. Send a CV and a short note about a data problem you "
        "solved to jobs@greenfield.example. We answer every application within two weeks."
    ),
    "bug": (
        "Since updating to version 4.2 of the notes app on my Android phone, the app crashes every time I try to "
        "attach a photo to a note. It opens the gallery, I pick a picture, and then the screen goes black and the "
        "app closes. Text notes still work. I tried clearing the cache and reinstalling, which did not help. On my "
        "tablet, which is still on version 4.1, attaching photos works fine. The phone is a Pixel 7 running Android "
        "14. This is blocking me because I use photo notes for receipts at work. I would rate this as a serious "
        "problem. Please tell me if you need logs; I can send them. A workaround would be welcome until a fix."
    ),
    "restaurant": (
        "Dinner at Osteria Luna last Friday was a mixed evening. We were six people and had booked a table for "
        "eight o'clock, but we waited twenty-five minutes at the bar before being seated. The bread and olive oil "
        "were excellent, and the handmade pappardelle with wild boar ragu was the best pasta I have had this year. "
        "My partner's sea bass was overcooked and a little dry. Desserts were simple but good, especially the "
        "panna cotta. Service was friendly once we sat down, although our waiter forgot the wine twice. The bill "
        "came to 310 euros for six, including two bottles of wine. I would go back for the pasta, on a quieter "
        "night, and I would give the place three stars out of five."
    ),
    "apartment": (
        "Bright two-bedroom apartment for rent on Oak Street, third floor of a building with a lift. The living "
        "room gets afternoon sun and opens onto a small balcony. The kitchen was renovated last year and has a "
        "dishwasher, a gas hob and plenty of cupboards. Both bedrooms fit a double bed; the second one is also "
        "good as an office. There is one bathroom with a bath and shower. Rent is 1,250 dollars a month, heating "
        "included, electricity not. A deposit of one month is asked. Pets are allowed after a conversation with "
        "the owner. The flat is available from the first of May. The bus stop is two minutes away and the "
        "supermarket five. Call Maria on weekdays after five to arrange a visit."
    ),
    "movie": (
        "The new science fiction film 'Silent Orbit' follows a repair crew stranded on a space station after a "
        "solar storm cuts them off from Earth. The first hour is tense and beautifully shot, with long quiet "
        "scenes in which the crew argue about whether to wait or to risk a repair walk. The lead actress is "
        "excellent, and the score uses silence better than most films of its kind. The last forty minutes, "
        "however, turn into a predictable chase with a twist that I saw coming from the first scene. The film runs "
        "two hours and twenty minutes, which is at least twenty minutes too long. It is worth seeing on a big "
        "screen for the visuals, but I left a little disappointed. Seven out of ten."
    ),
    "event": (
        "Hello everyone, this is a reminder that our neighbourhood clean-up day takes place on Saturday the 12th "
        "of April, from nine in the morning until one in the afternoon. We meet at the entrance of Riverside Park, "
        "next to the playground. Gloves, bags and grabbers will be provided by the council, but please bring your "
        "own water bottle and wear sturdy shoes. Children are welcome if they come with an adult. Last year forty "
        "volunteers collected more than two hundred bags of litter. After the clean-up, the bakery on Mill Lane "
        "offers coffee and cake to every volunteer. If it rains heavily, we will move the event to the following "
        "Saturday. Please reply to this e-mail if you plan to come, so we know how many bags to order."
    ),
    "laptop": (
        "I have used the Aero 14 laptop for six weeks, mainly for programming and video calls. The screen is "
        "sharp and bright enough to work outside in the shade, and the keyboard is comfortable for long typing "
        "sessions. Battery life is the weak point: I get about five hours of real work, far from the twelve "
        "hours in the advertising. The fans are quiet most of the time but get loud when compiling large "
        "projects. It weighs 1.3 kilograms, which makes it easy to carry every day. There are two USB-C ports "
        "and one USB-A port, but no card reader. The webcam is mediocre in low light. I paid 1,099 dollars. For "
        "the price I expected a better battery, but I am mostly satisfied and would recommend it."
    ),
}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An ordinary user-written schema: properties and required, nothing else."""
    return {"type": "object", "properties": props, "required": required or list(props)}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("espresso", "Extract the product and a rating from 1 to 5.", obj({"product": STR, "rating": INT})),
    (
        "espresso",
        "List what the reviewer liked and disliked.",
        obj({"liked": {"type": "array", "items": STR}, "disliked": {"type": "array", "items": STR}}),
    ),
    ("blender", "Extract the delivery details from this review.", obj({"delivery_status": STR, "days_late": INT})),
    (
        "blender",
        "Extract the order number, the price paid and whether the customer would order again.",
        obj({"order_number": STR, "price": NUM, "would_order_again": BOOL}),
    ),
    ("hotel", "Extract the hotel, the city and the number of nights.", obj({"hotel": STR, "city": STR, "nights": INT})),
    (
        "hotel",
        "Summarise the stay.",
        obj(
            {
                "sentiment": {"type": "string", "enum": ["positive", "mixed", "negative"]},
                "best_thing": STR,
                "worst_thing": STR,
            }
        ),
    ),
    ("job", "Extract the job posting's key facts.", obj({"title": STR, "city": STR, "remote_days": INT})),
    (
        "job",
        "Extract how to apply.",
        obj({"email": STR, "deadline": STR, "skills": {"type": "array", "items": STR}}, ["email", "deadline"]),
    ),
    ("bug", "Turn this into a bug report.", obj({"app_version": STR, "device": STR, "summary": STR})),
    (
        "bug",
        "Triage this report.",
        obj({"severity": {"type": "string", "enum": ["low", "medium", "high"]}, "has_workaround": BOOL}),
    ),
    ("restaurant", "Extract the restaurant and the number of stars.", obj({"restaurant": STR, "stars": INT})),
    (
        "restaurant",
        "Extract the bill and the party size.",
        obj({"total_euros": NUM, "people": INT, "dishes": {"type": "array", "items": STR}}, ["total_euros", "people"]),
    ),
    ("apartment", "Extract the listing's details.", obj({"street": STR, "bedrooms": INT, "rent": NUM})),
    (
        "apartment",
        "Extract the rules and availability.",
        obj({"pets_allowed": BOOL, "available_from": STR, "contact": STR}),
    ),
    ("movie", "Extract the film's title and score out of ten.", obj({"title": STR, "score": INT})),
    (
        "movie",
        "Review summary.",
        obj(
            {
                "verdict": {"type": "string", "enum": ["recommend", "mixed", "avoid"]},
                "runtime_minutes": INT,
                "pros": {"type": "array", "items": STR},
            }
        ),
    ),
    ("event", "Extract the event's date, time and place.", obj({"date": STR, "start_time": STR, "place": STR})),
    (
        "event",
        "Extract what volunteers should bring.",
        obj({"bring": {"type": "array", "items": STR}, "children_welcome": BOOL}),
    ),
    ("laptop", "Extract the laptop's name, weight and price.", obj({"model": STR, "weight_kg": NUM, "price": NUM})),
    ("laptop", "Summarise the battery verdict.", obj({"battery_hours": INT, "satisfied": BOOL, "complaint": STR})),
]


def console_script() -> str:
    found = Path(sys.executable).parent / "compound"
    return str(found) if found.exists() else (shutil.which("compound") or "compound")


def valid(value: Any, schema: dict[str, Any]) -> bool:
    import jsonschema

    return jsonschema.Draft202012Validator(schema).is_valid(value)


def run_cli(cases: list[tuple[str, str, dict[str, Any]]], home: str) -> list[dict[str, Any]]:
    out = []
    env = {**os.environ, "COMPOUND_HOME": home}  # a fresh home: no cached reply
    with tempfile.TemporaryDirectory() as tmp:
        for i, (text, question, schema) in enumerate(cases):
            path = Path(tmp) / f"s{i}.json"
            path.write_text(json.dumps(schema))
            prompt = f"{TEXTS[text]}\n\n{question}"
            cmd = [console_script(), "ask", prompt, "--model", MODEL, "--schema", str(path)]
            cmd += ["--max-tokens", str(MAX_TOKENS), "--usage"]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            wall = time.perf_counter() - t0
            try:
                value = json.loads(done.stdout)
                ok = done.returncode == 0 and valid(value, schema)
            except json.JSONDecodeError:
                value, ok = None, False
            usage = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
            out.append(
                {
                    "case": i,
                    "valid": ok,
                    "wall_s": wall,
                    "value": value,
                    "usage": usage,
                    "error": done.stderr[-400:] if not ok else "",
                }
            )
    return out


def as_written(schema: dict[str, Any]) -> Any:
    """The schema decoded exactly as written: not closed, and without the decoding guards."""
    from compound.models.typed import JSONSchemaOutput

    class AsWritten(JSONSchemaOutput):
        def decoding_schema(self, max_tokens: int) -> dict[str, Any]:
            return self.schema

    return AsWritten(schema, closed=False)


def run_open(cases: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    from compound.core.errors import OutputParseError
    from compound.core.settings import configured
    from compound.models.registry import get_model
    from compound.models.typed import call_typed

    backend = get_model(MODEL)
    out = []
    with configured(cache=False):
        for i, (text, question, schema) in enumerate(cases):
            prompt = f"{TEXTS[text]}\n\n{question}"
            try:
                typed = call_typed(
                    as_written(schema),
                    prompt,
                    model=backend,
                    max_tokens=MAX_TOKENS,
                    parse_repairs=0,
                )
                gen, ok = typed.generations[-1], True
            except OutputParseError as e:
                gen, ok = e.generations[-1], False
            out.append(
                {"case": i, "valid": ok, "cut": gen.finish_reason == "length", "tokens": gen.usage.completion_tokens}
            )
    return out


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=len(CASES))
    p.add_argument("--no-open", action="store_true", help="skip the open-schema side")
    p.add_argument("--no-cli", action="store_true", help="skip the compound ask side")
    args = parse(p, cases=2)
    cases = CASES[: args.cases]
    with tempfile.TemporaryDirectory() as home:
        cli = [] if args.no_cli else run_cli(cases, home)
        os.environ["COMPOUND_HOME"] = home
        opened = [] if args.no_open else run_open(cases)
    n = len(cases)
    rows = []
    if cli:
        cut = sum("cut at max_tokens" in r["error"] for r in cli)
        rows.append({"side": "compound ask (closed, guarded)", "cases": n, "valid": sum(r["valid"] for r in cli)})
        rows[-1] |= {"cut_at_max_tokens": cut, "wall_s_per_case": sum(r["wall_s"] for r in cli) / n}
    if opened:
        rows.append({"side": "open schema, as written", "cases": n, "valid": sum(r["valid"] for r in opened)})
        rows[-1] |= {"cut_at_max_tokens": sum(r["cut"] for r in opened), "wall_s_per_case": float("nan")}
    summary = {
        "model": MODEL,
        "max_tokens": MAX_TOKENS,
        "cli_valid": f"{sum(r['valid'] for r in cli)} of {n}" if cli else "not run",
        "open_valid": f"{sum(r['valid'] for r in opened)} of {n}" if opened else "not run",
        "open_mean_completion_tokens": sum(r["tokens"] for r in opened) / n if opened else float("nan"),
    }
    report(f"plain JSON schemas on {MODEL}: {n} prompts of about 200 tokens", rows, summary, args.json)
    if args.json:
        args.json.with_suffix(".cases.json").write_text(json.dumps({"cli": cli, "open": opened}, indent=1))
    for r in cli:
        if not r["valid"]:
            print(f"case {r['case']} failed: {r['error']}", file=sys.stderr)
    if any(not r["valid"] for r in cli):
        sys.exit(1)


if __name__ == "__main__":
    main()
