"""The web UI in a real browser: Debian's Chromium driven by Playwright (no browser download).

Screenshots are kept in tests/artifacts/ (git-ignored) for a person to look at."""

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (extra serve-test)")

CHROMIUM = os.environ.get("COMPOUND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"Chromium not found at {CHROMIUM}: apt-get install -y chromium"
)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def shot(page, name):
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_open_a_run_and_expand_its_trace_tree(server, page):
    url, secrets = server
    r = httpx.post(
        f"{url}/v1/programs/write_email/run",
        json={"box": "Ana, team lunch moved to Friday, warm"},
        headers={"Authorization": f"Bearer {secrets['alice']}"},
    )
    run_id = r.json()["compound"]["run_id"]
    page.goto(f"{url}/ui/runs?name=write_email")
    page.click(f"a.run-link:text('{run_id}')")
    page.wait_for_url(f"**/ui/runs/{run_id}")
    run = page.locator("details.span-run").first
    run.locator("summary").first.click()
    step = run.locator("details.span-step").first
    assert step.is_visible()
    step.locator("summary").first.click()
    candidates = step.locator("details.span-candidate")
    assert candidates.count() == 2
    candidates.nth(0).locator("summary").first.click()
    llm = candidates.nth(0).locator("details.span-llm").first
    llm.locator("summary").first.click()
    reply = llm.locator("pre.reply").first
    assert reply.is_visible() and "12:30" in reply.inner_text()  # the first draft, later rejected
    assert "tokens" in llm.locator("summary").first.inner_text()
    assert "facts that are not in the box" in candidates.nth(0).inner_text()
    shot(page, "run_trace_tree")


def test_open_a_compare_report_and_see_its_plot(server, page, tmp_path):
    url, _ = server
    rows = [
        {
            "config": "small",
            "accuracy": 0.71,
            "calls": 100,
            "cpu_s": 12.0,
            "energy_j": 180.0,
            "cost_usd": 0.0,
            "pareto": True,
        },
        {
            "config": "large",
            "accuracy": 0.93,
            "calls": 100,
            "cpu_s": 160.0,
            "energy_j": 2400.0,
            "cost_usd": 0.0,
            "pareto": True,
        },
        {
            "config": "vote5",
            "accuracy": 0.74,
            "calls": 500,
            "cpu_s": 60.0,
            "energy_j": 900.0,
            "cost_usd": 0.0,
            "pareto": False,
        },
        {
            "config": "auto",
            "accuracy": 0.92,
            "calls": 131,
            "cpu_s": 40.0,
            "energy_j": 600.0,
            "cost_usd": 0.0,
            "pareto": True,
        },
    ]
    (tmp_path / "sms_compare.json").write_text(json.dumps({"rows": rows, "details": {}}))
    page.goto(f"{url}/ui/reports")
    assert "small, large, auto" in page.locator("#reports").inner_text()
    page.click("text=sms_compare")
    page.wait_for_url("**/ui/reports/sms_compare")
    img = page.locator("#plot")
    img.scroll_into_view_if_needed()
    page.wait_for_function("document.getElementById('plot').complete")
    assert page.evaluate("document.getElementById('plot').naturalWidth") > 300
    assert page.locator("tr.pareto").count() == 3
    shot(page, "compare_report")


def test_short_box_drafts_an_email_with_candidates_and_cost(server, page):
    url, _ = server
    page.goto(f"{url}/ui/write")
    page.fill("#box", "Ana, team lunch moved to Friday, warm")
    page.click("#draft")
    page.wait_for_selector("#email")
    assert page.inner_text("#subject") == "Lunch moves to Friday"
    assert page.inner_text("#greeting") == "Hi Ana,"
    assert "12:30" not in page.inner_text("#body")
    cards = page.locator(".candidate")
    assert cards.count() == 2
    assert "rejected" in cards.nth(0).inner_text() and "12:30" in cards.nth(0).inner_text()
    assert "facts that are not in the box: 12:30, lisbon" in cards.nth(0).inner_text()
    assert "chosen" in cards.nth(1).inner_text() and "meets every requirement" in cards.nth(1).inner_text()
    cost = page.inner_text("#cost")
    assert "2 model call(s)" in cost and "tokens" in cost and "J" in cost
    shot(page, "write_box")


def test_jobs_page(server, page):
    url, _ = server
    page.goto(f"{url}/ui/jobs")
    assert "No jobs yet" in page.inner_text("#jobs")


def test_the_write_page_shows_the_draft_as_it_is_written(isolated_home, page):
    from email_drafts import email_reply

    from compound.models.scripted import ScriptedBackend
    from compound.serve.app import create_app
    from compound.serve.background import BackgroundServer
    from compound.serve.programs import served_program
    from compound.serve.write_email import WriteEmail

    slow = WriteEmail(model=ScriptedBackend(email_reply, model="slow-email", latency_s=3.0))
    app = create_app([served_program("write_email", slow)], {}, None)
    with BackgroundServer(app) as url:
        page.goto(f"{url}/ui/write")
        assert "slow-email" in page.inner_text("#writer")  # the page says which model writes
        page.fill("#box", "Ana, team lunch moved to Friday, warm")
        page.click("#draft")
        page.wait_for_function("document.getElementById('live-body').textContent.split(' ').length > 3")
        partial = page.inner_text("#live-body")
        assert page.locator("#email").count() == 0  # still being written
        shot(page, "write_streaming")
        page.wait_for_selector("#email", timeout=30_000)
        final = page.inner_text("#body")
        assert final.startswith(partial.split(" at 12:30")[0][:20]) or "revision" in page.content()
        assert "12:30" not in final and page.locator(".candidate").count() == 2
        times = page.evaluate("window.draftTimes")
        assert times["first"] < times["done"]
        shot(page, "write_streamed_done")
