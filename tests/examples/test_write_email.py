"""The write_email example on the scripted backend, and its saved file served by name."""

import json
import sys
from pathlib import Path

import compound
from compound.serve.programs import load_served
from compound.serve.write_email import WriteEmail

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures"))
import write_email  # noqa: E402
from email_drafts import email_reply  # noqa: E402


def test_draft_is_repaired_until_it_invents_nothing():
    compound.register_model("email-test", compound.ScriptedBackend(email_reply, model="email-test"))
    result = write_email.draft("Ana, team lunch moved to Friday, warm", model="email-test")
    first, chosen = result.candidates
    assert not first.passed and any("12:30" in v.reason for v in first.validations)
    assert chosen.passed and result.best is chosen and "12:30" not in chosen.value.body


def test_saved_program_names_its_class_and_loads_back(tmp_path):
    path = WriteEmail(model="email-test", attempts=2).save(tmp_path / "write_email.json")
    state = json.loads(path.read_text())
    assert state["class"] == "compound.serve.write_email:WriteEmail"
    served = load_served(str(path))
    assert served.name == "write_email" and served.program.model == "email-test"
    assert set(served.outputs.model_fields) == {"subject", "greeting", "body", "sign_off"}
