import pytest

from compound.core.settings import get_settings
from compound.models.embedded import get_embedded


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def small_model():
    """The embedded small model on the default engine, loaded once for the session."""
    if not get_embedded(get_settings().small).installed():
        pytest.fail(f"the embedded model is not installed: compound models install {get_settings().small}")
    from compound.models.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(get_settings().small, n_ctx=2048)


def _write_lora_adapter(base, out, magnitude: float, rank: int = 4, seed: int = 0):
    """A tiny GGUF LoRA adapter on every attention query and value projection of ``base``.

    A is (rank, n_in) and B is (n_out, rank) in numpy order, which llama.cpp reads as ``lora_a``
    [n_in, rank] and ``lora_b`` [rank, n_out]. ``magnitude=0`` writes an adapter that changes nothing."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(base))
    writer = gguf.GGUFWriter(str(out), reader.fields["general.architecture"].contents())
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    rng = np.random.default_rng(seed)
    for t in reader.tensors:
        if t.name.startswith("blk.") and t.name.endswith(("attn_q.weight", "attn_v.weight")):
            n_in, n_out = int(t.shape[0]), int(t.shape[1])
            writer.add_tensor(f"{t.name}.lora_a", (rng.standard_normal((rank, n_in)) * magnitude).astype(np.float32))
            writer.add_tensor(f"{t.name}.lora_b", (rng.standard_normal((n_out, rank)) * magnitude).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


@pytest.fixture(scope="session")
def lora_adapters(tmp_path_factory):
    """Two adapters for the small model: ``strong`` (changes its output) and ``zero`` (changes nothing)."""
    pytest.importorskip("gguf", reason="writing test adapters needs the gguf package (dev extra)")
    from compound.models.llama_cpp import resolve_model_path

    base = resolve_model_path(get_settings().small)
    folder = tmp_path_factory.mktemp("lora")
    return {
        "strong": _write_lora_adapter(base, folder / "strong.gguf", 0.5),
        "zero": _write_lora_adapter(base, folder / "zero.gguf", 0.0),
    }
