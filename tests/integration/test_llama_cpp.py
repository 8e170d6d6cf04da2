import asyncio
import json
import os
import subprocess
import sys

import pytest
from pydantic import BaseModel

import compound
from compound import BudgetExceededError, ConfigurationError
from compound.models.typed import call_typed


class City(BaseModel):
    city: str
    country: str


def test_generate_counts_real_tokens_and_estimates_energy(small_model):
    with compound.track_usage() as t:
        g = small_model.generate("Name one colour.", max_tokens=8)
    assert g.text.strip()
    assert 0 < g.usage.completion_tokens <= 8
    assert g.usage.prompt_tokens >= 5
    assert g.usage.cpu_s > 0 and g.usage.energy_j > 0 and g.usage.energy_estimated
    assert t.physical.total_tokens == g.usage.total_tokens
    # the reservation bound holds for the real tokenizer
    assert (
        small_model.count_prompt_tokens(compound.Request((compound.Message("user", "Name one colour."),)))
        >= g.usage.prompt_tokens
    )


def test_schema_constrained_output_parses(small_model):
    out = call_typed(City, "Give a city and its country.", model=small_model, max_tokens=48)
    assert isinstance(out.value, City) and out.value.city


def test_concurrent_calls_are_serialized_and_match_sequential(small_model):
    prompts = [f"Say the number {i}." for i in range(4)]
    with compound.context(cache=False):
        seq = [small_model.generate(p, max_tokens=6).text for p in prompts]

        async def main():
            return await compound.gather(small_model.agenerate(p, max_tokens=6) for p in prompts)

        par = [g.text for g in asyncio.run(main())]
    assert par == seq


def test_token_cap_holds_on_the_real_model(small_model):
    with compound.context(cache=False), compound.budget(tokens=200) as b:
        with pytest.raises(BudgetExceededError) as info:
            for i in range(20):
                small_model.generate(f"Write a word about {i}.", max_tokens=30)
    assert b.used.total_tokens <= 200
    assert len(info.value.results) == b.used.calls >= 1


def test_logprobs_need_no_load_flag_on_the_default_engine(small_model):
    g = small_model.generate("hi", logprobs=True, max_tokens=4, cache=False)
    assert g.logprobs and len(g.logprobs) == g.usage.completion_tokens and all(lp <= 0 for lp in g.logprobs)


def test_logprobs_without_logits_all_is_a_clear_error_on_llama_cpp_python():
    pytest.importorskip("llama_cpp", reason="the optional llama-cpp-python engine is not installed")
    from compound.models.llama_cpp import LlamaCppBackend

    model = LlamaCppBackend("smollm2-135m", n_ctx=512, engine="llama-cpp-python")
    with pytest.raises(ConfigurationError, match="logits_all=True"):
        model.generate("hi", logprobs=True, cache=False)


def test_cli_ask_with_schema_prints_valid_json_and_is_traced(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                "required": ["city", "country"],
            }
        )
    )
    env = {**os.environ, "COMPOUND_HOME": str(tmp_path / "home")}
    cli = [sys.executable, "-m", "compound.cli"]
    out = subprocess.run(
        [*cli, "ask", "Give a city and its country", "--model", "smollm2-135m", "--schema", str(schema)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "llama_model_loader" not in out.stderr and "srv " not in out.stderr  # the engine's logs are silent
    value = json.loads(out.stdout)
    import jsonschema

    jsonschema.validate(value, json.loads(schema.read_text()))
    listed = subprocess.run([*cli, "traces", "list"], capture_output=True, text=True, env=env, timeout=60)
    assert "llama_cpp:smollm2-135m" in listed.stdout and "ask" in listed.stdout


def test_cli_missing_model_file_is_a_clear_error(tmp_path):
    env = {**os.environ, "COMPOUND_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-m", "compound.cli", "ask", "hi", "--model", str(tmp_path / "none.gguf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 1
    assert "nor an existing .gguf file" in out.stderr


def test_logprobs_give_a_confidence_signal():
    from typing import Literal

    from pydantic import create_model

    from compound.models.llama_cpp import LlamaCppBackend
    from compound.program.predict import Predict, Signature
    from compound.program.rows import RowInput

    model = LlamaCppBackend("smollm2-135m", n_ctx=2048, logits_all=True)
    Out = create_model("Out", label=(Literal["positive", "negative"], ...))
    step = Predict(
        Signature(RowInput, Out, "Is the review positive or negative?"), model=model, logprobs=True, max_tokens=20
    )
    result = step.run(row="review: I loved it, wonderful!")
    assert result.best.generations[-1].logprobs
    assert 0.0 < result.confidence <= 1.0
