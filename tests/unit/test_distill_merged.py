"""Serving a distilled student merged (``compound.optimize.distill.merged``): the check decides, the record
says why, and a changed file is refused. Merging itself is in test_merge; real models in integration."""

import json

import pytest

from compound import ConfigurationError
from compound.models import merge
from compound.models.lora import file_sha256
from compound.optimize.distill import merged as merged_mod
from compound.optimize.distill.pipeline import read_record, student_spec

PROMPTS = [[{"role": "user", "content": f"case {i}"}] for i in range(6)]


@pytest.fixture
def student(tmp_path, monkeypatch):
    """A saved student folder (adapter, export check, record without a merged model), and fakes for the
    merge (writes a file) and for the replies of each served model."""
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "adapter.gguf").write_bytes(b"GGUF adapter")
    (folder / "export_check.json").write_text(json.dumps({"prompts": [{"messages": m} for m in PROMPTS[:3]]}))
    record = {
        "format": "compound.student",
        "version": 1,
        "base": "smollm2-135m",
        "adapter": "adapter.gguf",
        "adapter_sha256": file_sha256(folder / "adapter.gguf"),
        "model": "smollm2-135m+lora=x",
        "cost": {"label_cpu_s": 10.0},
    }
    (folder / "student.json").write_text(json.dumps(record))

    def fake_merge(base, adapters, out, tensor_type=None):
        out.write_bytes(b"GGUF merged")
        return {"file": str(out), "merged_tensors": 1, "types": ["Q8_0"]}

    monkeypatch.setattr(merge, "merge_lora", fake_merge)
    monkeypatch.setattr("compound.models.embedded.EmbeddedModel.path", lambda self, models_dir: folder / "base.gguf")
    replies = {"merged": lambda m: "same", "adapter": lambda m: "same"}
    asked = []

    def fake_replies(spec, prompts):
        who = "adapter" if "+lora=" in spec else "merged"
        asked.append((who, len(prompts)))
        return [replies[who](m) for m in prompts]

    monkeypatch.setattr(merged_mod, "_replies", fake_replies)
    return folder, replies, asked


def test_a_merge_that_answers_as_the_adapter_is_served_and_recorded(student):
    folder, _, asked = student
    record = merged_mod.add_merged(folder)
    assert record["merged"]["served"] and record["merged"]["check"] == {"prompts": 3, "same": 3, "differ": []}
    assert record["merged"]["sha256"] == file_sha256(folder / "model.gguf")
    assert record["model"] == str((folder / "model.gguf").resolve())
    assert asked == [("merged", 3), ("adapter", 3)]  # the export check's prompts, each model once
    assert read_record(folder) == record and record["cost"]["merge_cpu_s"] >= 0
    assert merged_mod.add_merged(folder) == record and len(asked) == 2  # done once


def test_a_merge_that_answers_otherwise_is_not_served(student):
    folder, replies, _ = student
    replies["merged"] = lambda m: "other" if m[0]["content"] == "case 1" else "same"
    record = merged_mod.add_merged(folder)
    assert not record["merged"]["served"]
    assert record["merged"]["check"]["differ"] == [{"merged": "other", "adapter": "same"}]
    assert record["model"] == student_spec("smollm2-135m", folder / "adapter.gguf")


def test_checks_use_at_most_a_few_prompts_and_none_means_not_served(student):
    folder, _, asked = student
    entry = merged_mod.merge_student(folder, "smollm2-135m", PROMPTS)
    assert entry["check"]["prompts"] == merged_mod.CHECK_PROMPTS == asked[0][1]
    assert not merged_mod.merge_student(folder, "smollm2-135m", [])["served"]


def test_a_changed_merged_file_is_refused(student):
    folder, _, _ = student
    record = merged_mod.add_merged(folder)
    (folder / "model.gguf").write_bytes(b"GGUF tampered")
    with pytest.raises(ConfigurationError, match="model.gguf is missing or changed since it was merged"):
        merged_mod.served_spec(folder, record)
