"""``compound distill email-writer`` end to end on the embedded models, at the smallest size that runs
every step: the 1.5B teacher invents and drafts a few boxes, the judge filters them, smollm2-135m trains a
few LoRA steps on one core, is merged, evaluated against its teacher and installed; then the Write
program drafts with the installed file. The figures at a useful size are in docs/distillation.md."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compound.core.settings import get_settings

pytest.importorskip("peft", reason="needs the train extra: pip install 'compound[train]'")

CLI = Path(sys.executable).with_name("compound")


def test_the_recipe_installs_a_student_the_write_program_drafts_with(tmp_path):
    home = get_settings().home  # the test's own (tests/conftest.py): the embedded models resolve as in any home
    env = {**os.environ, "COMPOUND_HOME": str(home)}
    # the default judge (the teacher) compares each draft with another box's: it must keep some of them
    args = ["distill", "email-writer", "--boxes", "6", "--held-out", "2", "--epochs", "1", "--threads", "1"]
    done = subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    installed = home / "students" / "email-writer" / "email-writer.gguf"
    report = json.loads(installed.with_suffix(".json").read_text())
    assert report["format"] == "compound.email_writer" and report["evaluation"]["boxes"] == 2
    assert report["judge"] == report["teacher"] == "qwen2.5-coder-1.5b" and report["data"]["kept"] >= 1
    # the merged file is what is installed and scored; whether it answers as its adapter did is recorded
    assert report["installed"] == str(installed) and installed.stat().st_size > 10_000_000
    assert isinstance(report["merged"]["served"], bool)
    assert f"installed {installed}" in done.stdout
    draft = """
import json
from compound.serve.write_email import WriteEmail, writer_label
program = WriteEmail()
result = program.result(box="Ana, lunch moved to Friday, warm")
print(json.dumps({"label": writer_label(program), "draft": result.value is not None}))
"""
    ran = subprocess.run([sys.executable, "-c", draft], capture_output=True, text=True, env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    got = json.loads(ran.stdout.strip().splitlines()[-1])
    assert got["draft"]  # the grammar holds the student to the draft's schema
    assert got["label"].startswith("the distilled email writer: smollm2-135m taught by qwen2.5-coder-1.5b")
