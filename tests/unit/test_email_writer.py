"""The email writer recipe (``compound distill email-writer``) on scripted models (see
tests/unit/email_writer_site/email_writer_fakes.py: a teacher that fails the length check on 'brief'
boxes, a judge that rejects drafts of 'urgent' boxes and always prefers position A, a student that invents
a name in 'firm' emails); torch training is faked behind the pipeline's ``fit_student`` seam, as in
test_distill. The real run is in the integration tests and docs/write.md."""

import asyncio
import json
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

import compound
from compound.control.preference import prefer
from compound.core.settings import get_settings
from compound.models.registry import get_model
from compound.serve import email_writer as ew
from compound.serve.email_boxes import TONES, draws, invent_boxes
from compound.serve.write_email import INSTRUCTIONS, WriteEmail, distilled_writer_path, writer_label, writer_model

SITE = Path(__file__).parent / "email_writer_site"


@pytest.fixture
def fakes(isolated_home):
    module = SimpleNamespace(**runpy.run_path(str(SITE / "email_writer_fakes.py")))
    before = get_settings().large
    module.register()
    trained: list = []
    from compound.optimize.distill import pipeline

    real_fit = pipeline.fit_student
    module.fake_training(trained)
    yield SimpleNamespace(module=module, trained=trained, home=isolated_home)
    pipeline.fit_student = real_fit
    compound.configure(large=before)


def recipe(home, boxes=30, held_out=12, **changes):
    settings = {"teacher": "ew-teacher", "student": "smollm2-135m", "judge": "ew-judge", "progress": False}
    return ew.EmailWriterRecipe(boxes=boxes, held_out=held_out, work=home / "work", **(settings | changes))


def tone(box: str) -> str:
    return box.rsplit(",", 1)[-1].strip()


# ---- boxes --------------------------------------------------------------------------------------------


def test_boxes_are_seeded_varied_distinct_and_a_rerun_costs_no_call(fakes):
    teacher = get_model("ew-teacher")
    boxes = asyncio.run(invent_boxes("ew-teacher", 25, seed=3))
    assert len(boxes) == 25 and len({b["box"] for b in boxes}) == 25
    assert len({b["tone"] for b in boxes}) >= 6 and len({b["topic"] for b in boxes}) >= 10
    assert all(b["tone"] in TONES and b["box"].endswith(b["tone"]) for b in boxes)
    calls = len(teacher.requests)
    again = asyncio.run(invent_boxes("ew-teacher", 25, seed=3))
    assert again == boxes and len(teacher.requests) == calls  # the same draws, all from the cache
    other = asyncio.run(invent_boxes("ew-teacher", 25, seed=4))
    assert [b["box"] for b in other] != [b["box"] for b in boxes]
    assert draws(3) == draws(3) and draws(3) != draws(4)


def test_a_teacher_that_repeats_itself_gives_few_boxes_in_bounded_calls(isolated_home):
    same = compound.ScriptedBackend([json.dumps({"box": "Ana, lunch moved to Friday, warm"})], model="parrot")
    boxes = asyncio.run(invent_boxes(same, 10))
    assert [b["box"] for b in boxes] == ["Ana, lunch moved to Friday, warm"]  # near-copies dropped, not padded
    assert len(same.requests) <= 2 * 10 + 10


# ---- the pairwise judge -------------------------------------------------------------------------------


def test_both_orders_cancel_a_judge_that_prefers_a_position(isolated_home):
    always_a = compound.ScriptedBackend([json.dumps({"reason": "A.", "better": "A"})], model="always-a")
    got = asyncio.run(prefer("good", {"box": "x"}, "one", "two", model=always_a))
    assert got == {"score": 0.5, "consistent": False, "verdicts": ["first", "second"]}
    assert len(always_a.requests) == 2

    def fair(request):  # prefers the output "long", wherever it is shown
        better = "A" if "Output A: long" in request.messages[-1].content else "B"
        return json.dumps({"reason": "the long one", "better": better})

    judge = compound.ScriptedBackend(fair, model="fair", latency_s=0.01)
    assert asyncio.run(prefer("good", {}, "long", "short", model=judge))["score"] == 1.0
    assert asyncio.run(prefer("good", {}, "short", "long", model=judge)) == {
        "score": 0.0,
        "consistent": True,
        "verdicts": ["second", "second"],
    }


# ---- the recipe end to end ----------------------------------------------------------------------------


def test_the_recipe_filters_trains_on_the_programs_prompt_evaluates_and_installs(fakes):
    report = recipe(fakes.home).run()
    work = fakes.home / "work"
    decisions = [json.loads(line) for line in (work / "examples.jsonl").read_text().splitlines()]
    training_boxes = [d["inputs"]["box"] for d in decisions]
    assert len(decisions) == 30 == report["boxes"]["training"]
    for d in decisions:  # the program's checks and the judge decide, and say why
        box_tone = tone(d["inputs"]["box"])
        assert d["kept"] == (box_tone not in ("brief", "urgent")), d
        if box_tone == "brief":
            assert "the body has 4 words" in d["reason"]
        if box_tone == "urgent":  # the judge preferred another box's draft in both orders
            assert "this output won 0 of 2 orders and lost 2: preference 0, below 0.5" in d["reason"]
        elif box_tone != "brief":  # a position bias alone (one order each) drops nothing
            assert "won 1 of 2 orders and lost 1: preference 0.5, at least 0.5" in d["reason"]
    kept = [d for d in decisions if d["kept"]]
    assert kept and report["data"]["kept"] == len(kept)
    (examples,) = fakes.trained
    assert len(examples) == len(kept)
    assert all(INSTRUCTIONS in json.dumps(e["messages"]) for e in examples)  # the prompt the page sends
    # held-out boxes were never drafted for training
    held = [r["box"] for r in report["evaluation"]["rows"]]
    assert len(held) == 12 and not set(held) & set(training_boxes)

    ev = report["evaluation"]
    expect_teacher = sum(tone(b) != "brief" for b in held)
    expect_student = sum(tone(b) not in ("brief", "firm") for b in held)
    assert ev["teacher"]["checks_passed"] == expect_teacher
    assert ev["student"]["checks_passed"] == expect_student
    assert ev["student"]["checks_passed_share"] == pytest.approx(expect_student / 12)
    for row in ev["rows"]:
        if tone(row["box"]) == "firm":
            assert any("bob" in reason for reason in row["student"]["failed"])
        if tone(row["box"]) == "brief":
            assert row["teacher"]["attempts"] == 3  # Repair tried, and failed
    pref = ev["judge_preference"]  # the judge only ever says "A": both orders cancel it
    assert pref["student_score"] == 0.5 and pref["consistent_orders"] == 0 and pref["ties_or_split"] == 12
    assert ev["teacher"]["cpu_s_per_draft"] >= 0 and ev["student"]["tokens_per_draft"] > 0

    installed = distilled_writer_path()
    assert report["installed"] == str(installed) and report["scored_model"] == str((work / "model.gguf").resolve())
    assert installed.read_bytes() == (work / "model.gguf").read_bytes()
    assert not [p for p in installed.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    saved = json.loads(installed.with_suffix(".json").read_text())
    assert saved["format"] == "compound.email_writer" and saved["version"] == 1
    assert saved["filter_judge"]["min_preference"] == 0.5
    assert saved["evaluation"]["student"] == ev["student"]
    assert writer_model() == str(installed)  # the page's writer is now the student


def test_a_rerun_resumes_from_the_cache_and_changes_nothing(fakes):
    first = recipe(fakes.home, boxes=12, held_out=5).run()
    teacher, judge = get_model("ew-teacher"), get_model("ew-judge")
    calls = len(teacher.requests), len(judge.requests)
    second = recipe(fakes.home, boxes=12, held_out=5).run()
    assert (len(teacher.requests), len(judge.requests)) == calls  # every teacher and judge call was cached
    assert second["evaluation"]["teacher"] == first["evaluation"]["teacher"]  # cached calls keep their cost
    assert second["data"] == first["data"]


def test_install_replaces_the_writer_in_one_rename_and_needs_a_merged_model(fakes, tmp_path):
    target = distilled_writer_path()
    target.parent.mkdir(parents=True)
    target.write_bytes(b"the writer installed before")
    work = tmp_path / "w"
    work.mkdir()
    (work / "model.gguf").write_bytes(b"the new merged writer")
    assert ew.install(work, {"merged": None}) is None  # trained without merging: nothing for the page
    assert target.read_bytes() == b"the writer installed before"
    assert ew.install(work, {"merged": {"file": "model.gguf", "served": False}}) == str(target)
    assert target.read_bytes() == b"the new merged writer"
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left


def test_the_forecast_counts_the_calls_of_each_step(isolated_home):
    plan = recipe(isolated_home, boxes=40, held_out=10).forecast()
    steps = {r["step"].split(" (")[0]: r for r in plan["steps"]}
    assert steps["invent boxes"]["calls"] == 50 and steps["judge filter"]["calls"] == 40
    assert steps["evaluate"]["calls"] == pytest.approx(10 * (2 * ew.DRAFT_ATTEMPTS + 4))
    assert plan["cpu_s"] > 0 and plan["calls"] == round(sum(r["calls"] for r in plan["steps"]))
    with pytest.raises(compound.ConfigurationError, match="--boxes"):
        recipe(isolated_home, boxes=0).forecast()


# ---- the Write page picks the student up --------------------------------------------------------------


def test_the_write_page_drafts_with_the_installed_student_and_says_so(fakes):
    from compound.serve.app import create_app
    from compound.serve.background import BackgroundServer

    named = WriteEmail(model="ew-teacher")
    assert writer_label(named) == get_model("ew-teacher").model_id  # a named model: its id
    recipe(fakes.home, boxes=10, held_out=4).run()
    installed = str(distilled_writer_path())
    compound.register_model(installed, fakes.module.student_backend())  # the installed file, scripted
    assert "distilled email writer" in writer_label(WriteEmail()) and writer_label(named).startswith("scripted")
    assert WriteEmail().backend() is get_model(installed)
    with BackgroundServer(create_app([], {}, None)) as url:
        page = httpx.get(f"{url}/ui/write", timeout=30).text
        assert "the distilled email writer: smollm2-135m taught by ew-teacher" in page
        drafted = httpx.post(f"{url}/ui/write", data={"box": "Mei, refund of the order, firm"}, timeout=60).text
    assert "My colleague Bob will follow up" in drafted  # the student wrote it (its failing first draft shown)


# ---- the command --------------------------------------------------------------------------------------


def test_the_command_forecasts_runs_reports_and_installs(compound_cli, isolated_home):
    env = {"EMAIL_WRITER_FAKES": "1", "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")])}
    args = ["distill", "email-writer", "--boxes", "14", "--held-out", "6", "--teacher", "ew-teacher"]
    args += ["--judge", "ew-judge", "--threads", "1"]
    dry = compound_cli(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "forecast:" in dry.stdout and "invent boxes: 20 calls" in dry.stdout
    installed = isolated_home / "students" / "email-writer" / "email-writer.gguf"
    assert not installed.exists()

    done = compound_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(installed.with_suffix(".json").read_text())
    ev = report["evaluation"]
    assert f"checks passed teacher {ev['teacher']['checks_passed']}/6" in done.stdout
    assert f"student {ev['student']['checks_passed']}/6" in done.stdout
    assert "judge preference for the student 0.50" in done.stdout and f"installed {installed}" in done.stdout
    assert installed.exists() and report["train"]["config"]["threads"] == 1

    bare = compound_cli("distill", env=env)
    assert bare.returncode != 0 and "compound distill email-writer" in bare.stderr and "Traceback" not in bare.stderr


def test_a_judge_that_rejects_every_draft_stops_before_training_and_installs_nothing(fakes):
    def no(request):  # prefers the control, wherever it is shown: the draft of another box
        a, b = request.messages[-1].content.split("Output A:")[1].split("Output B:")
        box = request.messages[-1].content.split("Inputs: {'box': '")[1].split("'}")[0]
        return json.dumps({"reason": "not good enough", "better": "B" if box in a else "A"})

    compound.register_model("ew-reject", compound.ScriptedBackend(no, model="ew-reject", latency_s=0.01))
    with pytest.raises(compound.ConfigurationError, match="the filter kept none of the teacher's 6 answers"):
        recipe(fakes.home, boxes=6, held_out=2, judge="ew-reject").run()
    assert fakes.trained == [] and not distilled_writer_path().exists()
    saved = (fakes.home / "work" / "examples.jsonl").read_text().splitlines()
    reasons = [json.loads(line)["reason"] for line in saved]  # the judge's, or a check's ('brief' boxes)
    assert len(saved) == 6 and all("won 0 of 2 orders and lost 2" in r or "the body has 4 words" in r for r in reasons)
    assert any("won 0 of 2 orders" in r for r in reasons)


def test_a_student_trained_on_the_programs_prompt_is_loaded_with_it(fakes):
    from compound.optimize.distill.pipeline import load_student

    recipe(fakes.home, boxes=8, held_out=2).run()
    student, record = load_student(WriteEmail(), fakes.home / "work")
    assert record["prompt"] == "program" and student.instructions == INSTRUCTIONS
    assert isinstance(student, WriteEmail) and student.model == str((fakes.home / "work" / "model.gguf").resolve())
