"""The small, medium and large models are settings: every default that names one reads it when it runs."""

import dataclasses
import json

import pandas as pd
import pytest

import compound
from compound.core.concurrency import run_sync
from compound.evaluate.compare import compare
from compound.optimize.auto_lora import LoraStudent
from compound.optimize.distill.pipeline import Distill
from compound.testing import configured, override


def _labeller(name, answer):
    calls = []

    def reply(request):
        calls.append(request)
        return json.dumps({"label": answer})

    return compound.ScriptedBackend(reply, model=name, latency_s=0.001), calls


def test_the_defaults_are_the_embedded_models_and_the_settings_are_frozen():
    s = compound.get_settings()
    assert (s.small, s.medium, s.large) == ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.large = "other"  # type: ignore[misc]


def test_configure_large_changes_which_model_compare_asks():
    df = pd.DataFrame({"text": [f"row {i}" for i in range(6)], "gold": ["yes", "no"] * 3})
    small, small_calls = _labeller("my-small", "yes")
    medium, medium_calls = _labeller("my-medium", "no")
    large, large_calls = _labeller("my-large", "no")
    models = {"my-small": small, "my-medium": medium, "my-large": large}
    with (
        configured(small="my-small", medium="my-medium", large="my-large"),
        override(models, allow_model_requests=False),
    ):
        result = run_sync(compare(df, "text", "gold", ["small", "medium", "large"], limit=6, labels=["yes", "no"]))
    assert len(small_calls) == len(medium_calls) == len(large_calls) == 6
    accuracy = {r["config"]: r["accuracy"] for r in result["rows"]}
    assert accuracy == {"small": 0.5, "medium": 0.5, "large": 0.5}


def test_students_take_the_small_model_when_they_are_made_not_when_imported():
    assert LoraStudent().base == "smollm2-135m"
    with configured(small="my-small"):
        assert LoraStudent().base == "my-small"
        assert Distill("my-large").student == "my-small"
    assert Distill("t").student == "smollm2-135m"


def test_context_changes_the_models_for_one_block_only():
    with compound.context(large="block-large"):
        assert compound.get_settings().large == "block-large"
    assert compound.get_settings().large == "qwen2.5-coder-1.5b"


def test_the_old_constants_warn_and_read_the_settings():
    import compound.models.embedded as embedded

    with configured(large="my-large"), pytest.warns(DeprecationWarning, match=r"use compound.get_settings\(\).large"):
        assert embedded.LARGE == "my-large"
