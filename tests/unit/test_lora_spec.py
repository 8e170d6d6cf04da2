"""The LoRA model spec and the cache identity of adapted models (no model is loaded)."""

import pytest

from compound import ConfigurationError
from compound.models.llama_cpp import LlamaCppBackend
from compound.models.lora import lora_spec, split_lora_spec
from compound.models.registry import parse_spec


@pytest.fixture
def adapters(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"GGUF" + b"adapter a")
    b.write_bytes(b"GGUF" + b"adapter b")
    return a, b


def test_spec_parses_base_adapters_and_scales(adapters):
    a, b = adapters
    base, parsed = split_lora_spec(f"smollm2-135m+lora={a}+lora={b}@0.5")
    assert base == "smollm2-135m"
    assert [(x.path, x.scale) for x in parsed] == [(a, 1.0), (b, 0.5)]
    assert split_lora_spec(lora_spec(base, parsed)) == (base, parsed)
    assert parse_spec(f"smollm2-135m+lora={a}") == ("llama_cpp", f"smollm2-135m+lora={a}")


def test_model_id_names_each_adapter_by_content(adapters, tmp_path):
    a, b = adapters
    base = LlamaCppBackend("smollm2-135m")
    with_a = LlamaCppBackend(f"smollm2-135m+lora={a}")
    with_b = LlamaCppBackend("smollm2-135m", lora=[(b, 1.0)])
    half_a = LlamaCppBackend("smollm2-135m", lora=[(a, 0.5)])
    ids = {base.model_id, with_a.model_id, with_b.model_id, half_a.model_id}
    assert len(ids) == 4
    assert with_a.lora[0].sha256 in with_a.model_id and str(a) not in with_a.model_id
    moved = tmp_path / "moved.gguf"
    moved.write_bytes(a.read_bytes())
    assert LlamaCppBackend("smollm2-135m", lora=[(moved, 1.0)]).model_id == with_a.model_id


def test_bad_adapters_are_clear_errors(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        LlamaCppBackend(f"smollm2-135m+lora={tmp_path / 'none.gguf'}")
    text = tmp_path / "adapter.safetensors"
    text.write_bytes(b"not gguf")
    with pytest.raises(ConfigurationError, match="not a GGUF file"):
        LlamaCppBackend("smollm2-135m", lora=[(text, 1.0)])
    with pytest.raises(ConfigurationError, match="no base model"):
        split_lora_spec(f"+lora={text}")


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="the engines are: xllamacpp, llama-cpp-python"):
        LlamaCppBackend("smollm2-135m", engine="vllm")


def test_a_model_file_is_cached_under_its_content(tmp_path):
    path = tmp_path / "student.gguf"
    path.write_bytes(b"GGUF first training")
    first = LlamaCppBackend(str(path)).cache_identity()
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(path.read_bytes())
    assert LlamaCppBackend(str(copy)).cache_identity().endswith(first.rpartition("#")[2])
    path.write_bytes(b"GGUF retrained, merged again")  # the same path, new content: no stale cached replies
    assert LlamaCppBackend(str(path)).cache_identity() != first
    assert LlamaCppBackend("smollm2-135m").cache_identity() == "llama_cpp:smollm2-135m"


class Closed:
    def close(self):
        pass


def test_the_flash_attention_choice_reaches_the_engine_and_keeps_its_own_cache(monkeypatch):
    from compound.core.settings import configured
    from compound.models import llama_cpp

    loaded = []
    monkeypatch.setattr(llama_cpp, "open_engine", lambda name, config: loaded.append((name, config)) or Closed())
    default = LlamaCppBackend("smollm2-135m")
    off = LlamaCppBackend("smollm2-135m", flash_attn=False)
    with configured(flash_attn=True):
        on = LlamaCppBackend("smollm2-135m")  # the process-wide setting, read when the backend is made
    both = LlamaCppBackend("smollm2-135m", engine="llama-cpp-python", flash_attn=False)
    assert default.model_id == "llama_cpp:smollm2-135m"
    assert off.model_id == "llama_cpp:smollm2-135m?flash_attn=off"
    assert on.model_id == "llama_cpp:smollm2-135m?flash_attn=on"
    assert both.model_id == "llama_cpp:smollm2-135m?engine=llama-cpp-python&flash_attn=off"
    for backend in (default, off, on):
        backend._load()
    assert [config.flash_attn for _, config in loaded] == [None, False, True]


def test_the_polling_level_reaches_the_engine_when_it_loads_and_is_checked(monkeypatch):
    import pytest

    from compound.core.errors import ConfigurationError
    from compound.core.settings import configured
    from compound.models import llama_cpp

    loaded = []
    monkeypatch.setattr(llama_cpp, "open_engine", lambda name, config: loaded.append(config) or Closed())
    LlamaCppBackend("smollm2-135m")._load()
    with configured(poll=0):  # read when the model loads; replies do not change, so neither does the cache
        quiet = LlamaCppBackend("smollm2-135m")
        quiet._load()
    assert [c.poll for c in loaded] == [None, 0] and quiet.model_id == "llama_cpp:smollm2-135m"
    with pytest.raises(ConfigurationError, match="poll must be between 0 and 100"), configured(poll=101):
        pass
