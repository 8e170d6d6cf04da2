"""The Write page as a user meets it: ``compound serve write_email.json``, then Chromium at ``/ui/write``.

    python benchmarks/write_page.py --json out.json --shots results/write/   # 20 boxes, the installed writer
    python benchmarks/write_page.py --smoke                                   # 2 boxes, smollm2-135m (CI)

The program is saved as a user saves it (``WriteEmail().save``, no model named), served by the
``compound`` console script in its own process, and driven by Debian's Chromium through Playwright: type
the box, press *Draft it*, wait for the result. Per box: time to the first word of the draft on the page
(``first_s``, from the click, as the page's script measures it), time to the whole result (``done_s``),
whether the chosen draft meets every requirement of the program, and the run's model calls and CPU
seconds. The server's start and model load are one-time costs, reported apart, as is a first warm-up
draft. Screenshots (mid-draft and done) go to ``--shots``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import parser, report, wait_for_server

BOXES = [
    "Ana, team lunch moved to Friday, warm",
    "landlord, the kitchen tap is leaking again, polite but firm",
    "Marco, thanks for covering my shift on Saturday, grateful",
    "Dr. Patel, need to reschedule my appointment to next week, formal",
    "team, the quarterly report is due Monday, friendly reminder",
    "Grandma, thank you for the birthday sweater, loving",
    "Sam, can you send me the slides from yesterday's talk, casual",
    "hiring manager, following up on my application for the designer role, professional",
    "neighbours, party at our place on Saturday night, sorry for the noise in advance",
    "Lena, congratulations on the new job, excited",
    "customer support, my order arrived damaged, asking for a replacement, calm",
    "book club, next meeting is at the library, cheerful",
    "Professor Kim, asking for an extension on the essay, respectful",
    "Tom, I can't make it to the gym tomorrow, apologetic",
    "all staff, the office will be closed on Monday for maintenance, neutral",
    "Priya, welcome to the team, warm and brief",
    "coach, my son will miss practice this week because he is sick, short",
    "Jules, let's catch up over coffee soon, relaxed",
    "volunteers, thank you for helping at the food drive, heartfelt",
    "IT desk, my laptop will not connect to the printer, need help, polite",
]


def serve(program: Path, port: int, home: str, log: Any) -> subprocess.Popen:
    script = Path(sys.prefix) / "bin" / "compound"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "compound.cli"]
    env = {**os.environ, "COMPOUND_HOME": home}
    return subprocess.Popen([*cmd, "serve", str(program), "--port", str(port)], env=env, stdout=log, stderr=log)


def draft(page: Any, url: str, box: str, shots: Path | None, name: str) -> dict[str, Any]:
    page.goto(f"{url}/ui/write")
    page.fill("#box", box)
    page.click("#draft")
    if shots is not None:
        page.wait_for_function(
            "document.getElementById('live-body').textContent.split(' ').length > 4", timeout=120_000
        )
        page.screenshot(path=str(shots / f"{name}-writing.png"), full_page=True)
    page.wait_for_selector("#email, #error", timeout=300_000)
    if shots is not None:
        page.screenshot(path=str(shots / f"{name}-done.png"), full_page=True)
    times = page.evaluate("window.draftTimes")
    ok = page.locator("#email").count() == 1
    chosen = page.locator(".candidate.chosen")
    passed = ok and chosen.count() == 1 and "meets every requirement" in chosen.inner_text()
    cost = page.inner_text("#cost") if ok else page.inner_text("#error")
    return {
        "box": box,
        "first_s": times["first"] if times["first"] is not None else float("nan"),
        "done_s": times["done"],
        "passed": passed,
        "candidates": page.locator(".candidate").count(),
        "body": page.inner_text("#body") if ok else "",
        "cost": cost,
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--boxes", type=int, default=20)
    p.add_argument("--shots", type=Path, help="folder for screenshots (mid-draft and done, first three boxes)")
    p.add_argument("--model", help="the program's model (default: none named, so the best writer installed)")
    p.add_argument(
        "--chromium", default=os.environ.get("COMPOUND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    )
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="compound-write-bench-")
    os.environ["COMPOUND_HOME"] = home  # the server's home: the writer is looked up there
    from compound.models.local_server import free_port
    from compound.serve.write_email import WriteEmail, writer_model

    boxes = BOXES[: 2 if args.smoke else args.boxes]
    model = "smollm2-135m" if args.smoke and args.model is None else args.model
    program = WriteEmail(model=model).save(Path(home) / "write_email.json")
    if args.shots is not None:
        args.shots.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    log_path = Path(home) / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed below, after the process)
    proc = serve(program, port, home, log)
    try:
        wait_for_server(f"{url}/healthz", proc, log_path)
        start_s = time.perf_counter() - t0
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            warm = draft(page, url, "Bo, see you tomorrow, short", None, "warm-up")  # loads the model
            rows = []
            for i, box in enumerate(boxes):
                shots = args.shots if args.shots is not None and i < 3 else None
                rows.append(draft(page, url, box, shots, f"box{i:02d}"))
                print(
                    f"{i:2d} first {rows[-1]['first_s']:.2f} s, done {rows[-1]['done_s']:.2f} s, "
                    f"passed {rows[-1]['passed']}: {box}",
                    file=sys.stderr,
                )
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    table = [
        {
            "box": r["box"][:40],
            "first_s": r["first_s"],
            "done_s": r["done_s"],
            "passed": r["passed"],
            "candidates": r["candidates"],
        }
        for r in rows
    ]
    summary = {
        "writer": model or writer_model(),
        "boxes": len(rows),
        "server_start_s (once)": start_s,
        "warm_up_draft_s (once)": warm["done_s"],
        "passed": f"{sum(r['passed'] for r in rows)}/{len(rows)}",
        "p50_first_word_s": statistics.median(r["first_s"] for r in rows),
        "p50_whole_draft_s": statistics.median(r["done_s"] for r in rows),
        "max_whole_draft_s": max(r["done_s"] for r in rows),
    }
    report("the Write page in Chromium, through compound serve", table, summary, args.json)
    if args.json is not None:  # the drafts themselves, for a person to read
        data = json.loads(args.json.read_text())
        data["drafts"] = [{"box": r["box"], "body": r["body"], "cost": r["cost"]} for r in rows]
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
