"""Streaming on the real embedded model, on both engines and through llama.cpp's own HTTP server."""

import asyncio
import time

import pydantic
import pytest

import compound
from compound.models.embedded import get_embedded
from compound.models.llama_cpp import LlamaCppBackend
from compound.store.traces import trace_store

PROMPT = "Write four sentences about the sea."
SMALL = compound.get_settings().small


@pytest.mark.parametrize("engine", ["xllamacpp", "llama-cpp-python"])
def test_streamed_text_is_the_whole_text_for_the_same_seed(engine, small_model):
    """Asked again, the engine would reuse the prompt's cached state, whose logits differ in their last
    bits and make a sampled reply drift: a named seed gives the same text in every order."""
    model = small_model if engine == "xllamacpp" else LlamaCppBackend(SMALL, n_ctx=2048, engine=engine)
    params = {"max_tokens": 48, "temperature": 0.8, "seed": 11, "cache": False}
    for prompt in (PROMPT, "Give three tips for a first job interview.", "Explain a hash table to a child."):
        stream = model.stream(prompt, **params)
        deltas = list(stream)
        whole = model.generate(prompt, **params)
        again = model.generate(prompt, **params)
        assert len(deltas) > 10 and "".join(deltas) == whole.text == stream.generation.text == again.text
        assert stream.generation.usage.completion_tokens == whole.usage.completion_tokens
        assert stream.generation.usage.prompt_tokens == whole.usage.prompt_tokens


@pytest.mark.parametrize("engine", ["xllamacpp", "llama-cpp-python"])
def test_a_stream_closed_early_stops_the_model(engine, small_model):
    model = small_model if engine == "xllamacpp" else LlamaCppBackend(SMALL, n_ctx=2048, engine=engine)
    with compound.budget(tokens=100_000) as b:
        stream = model.stream(PROMPT, max_tokens=400, temperature=0.0, cache=False)
        t0 = time.perf_counter()
        for i, _ in enumerate(stream):
            if i == 3:
                break
        stream.close()
        closed_s = time.perf_counter() - t0
        assert b.reserved_tokens == 0 and 0 < b.used.completion_tokens < 20
    full = model.generate(PROMPT, max_tokens=400, temperature=0.0, cache=False)
    assert full.usage.completion_tokens > 40 and closed_s < full.usage.wall_s  # it did not run to the end
    assert any(s["status"] == "cancelled" for s in trace_store().list(20, kind="llm"))


def test_a_typed_step_streams_partials_on_the_real_model(small_model):
    class City(pydantic.BaseModel):
        city: str
        country: str

    step = compound.Predict(
        compound.Signature(pydantic.create_model("Q", question=(str, ...)), City), model=small_model
    )
    s = step.stream(question="Which city is the capital of France?")
    partials = list(s)
    assert len(partials) > 3 and isinstance(s.value, City)
    assert partials[-1].value == s.value.model_dump()


def test_astream_through_llama_server(tmp_path):
    from compound.models.local_server import local_server
    from compound.models.openai_compat import OpenAIBackend

    path = get_embedded(SMALL).path(compound.get_settings().models_dir)
    with local_server("llama-server", path, log=tmp_path / "server.log") as url:
        model = OpenAIBackend("small", base_url=url)
        params = {"max_tokens": 32, "temperature": 0.0, "cache": False}

        async def main():
            s = model.astream(PROMPT, **params)
            return [d async for d in s], s.generation

        deltas, generation = asyncio.run(main())
        assert len(deltas) > 5 and "".join(deltas) == generation.text == model.generate(PROMPT, **params).text
        assert generation.usage.completion_tokens > 5 and generation.usage.prompt_tokens > 5


def test_compound_ask_stream_prints_as_the_model_writes(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "COMPOUND_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "compound.cli", "ask", PROMPT, "-m", SMALL, "--stream", "--max-tokens", "80"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    reads = []
    while chunk := os.read(proc.stdout.fileno(), 4096):
        reads.append((time.perf_counter(), chunk))
    proc.wait(timeout=300)
    assert proc.returncode == 0, proc.stderr.read()
    assert len(reads) > 5  # many writes, not one at the end
    assert reads[-1][0] - reads[0][0] > 0.2  # spread over the generation
    assert len(b"".join(c for _, c in reads).decode().split()) > 20
