"""Merging GGUF LoRA adapters into their base (``compound.models.merge``), on small written GGUF files."""

import json

import numpy as np
import pytest

from compound import ConfigurationError
from compound.models.lora import LoraAdapter
from compound.models.merge import merge_lora

gguf = pytest.importorskip("gguf", reason="merging needs the gguf package (dev extra)")

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((64, 32)).astype(np.float32)  # blk.0.attn_q.weight, numpy (out, in)
FFN = RNG.standard_normal((32, 64)).astype(np.float32)  # blk.0.ffn_down.weight, stored as Q4_1 in the base


def write_base(path, arch="llama"):
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("tiny")
    writer.add_uint32(f"{arch}.attention.head_count", 2)
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("blk.0.attn_q.weight", Q)
    q4 = gguf.quants.quantize(FFN, gguf.GGMLQuantizationType.Q4_1)
    writer.add_tensor("blk.0.ffn_down.weight", q4, raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(32, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_adapter(path, pairs, alpha=8.0, arch="llama"):
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    for name, (a, b) in pairs.items():
        writer.add_tensor(f"{name}.lora_a", a)
        writer.add_tensor(f"{name}.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return LoraAdapter.load(path)


def pair(rank, n_out, n_in, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rank, n_in)).astype(np.float32), rng.standard_normal((n_out, rank)).astype(np.float32)


def tensors(path):
    reader = gguf.GGUFReader(str(path))
    return reader, {t.name: t for t in reader.tensors}


def weights(t):
    return gguf.quants.dequantize(t.data, t.tensor_type)


def test_merged_weights_are_base_plus_scaled_lora_and_the_rest_is_copied(tmp_path):
    base = write_base(tmp_path / "base.gguf")
    a, b = pair(4, 64, 32, 1)
    adapter = write_adapter(tmp_path / "a.gguf", {"blk.0.attn_q.weight": (a, b)}, alpha=8.0)
    half = LoraAdapter.load(adapter.path, 0.5)
    done = merge_lora(base, (half,), tmp_path / "merged.gguf", tensor_type="F32")
    assert done["merged_tensors"] == 1 and done["types"] == ["F32"]
    reader, merged = tensors(tmp_path / "merged.gguf")
    # llama.cpp's formula: W + scale * alpha / r * B @ A
    np.testing.assert_allclose(weights(merged["blk.0.attn_q.weight"]), Q + 0.5 * 8.0 / 4 * b @ a, rtol=1e-5, atol=1e-5)
    _, original = tensors(base)
    for name in ("blk.0.ffn_down.weight", "blk.0.attn_norm.weight"):  # not adapted: the same bytes, the same type
        assert merged[name].tensor_type == original[name].tensor_type
        np.testing.assert_array_equal(merged[name].data, original[name].data)
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["a", "b", "c"]
    assert reader.fields["llama.attention.head_count"].contents() == 2
    assert reader.fields["general.name"].contents() == "tiny + LoRA (merged)"
    provenance = json.loads(reader.fields["compound.merged.adapters"].contents())
    assert provenance == [{"sha256": adapter.sha256, "scale": 0.5}]


def test_quantized_weights_are_merged_in_q8_0_by_default(tmp_path):
    base = write_base(tmp_path / "base.gguf")
    a, b = pair(2, 32, 64, 2)
    delta = 0.02 * (8.0 / 2) * b @ a  # a LoRA's change is small beside the weights
    adapter = write_adapter(tmp_path / "a.gguf", {"blk.0.ffn_down.weight": (0.02 * a, b)})
    merge_lora(base, (adapter,), tmp_path / "m.gguf")
    _, merged = tensors(tmp_path / "m.gguf")
    _, original = tensors(base)
    t = merged["blk.0.ffn_down.weight"]
    assert t.tensor_type.name == "Q8_0"
    expected = weights(original["blk.0.ffn_down.weight"]) + delta
    error = np.abs(weights(t) - expected).max()
    assert error < 0.1 * np.abs(delta).max()  # the change survives the rounding
    # in the base's own 4-bit type, rounding erases most of that change
    merge_lora(base, (adapter,), tmp_path / "m4.gguf", tensor_type="Q4_1")
    _, q4 = tensors(tmp_path / "m4.gguf")
    assert np.abs(weights(q4["blk.0.ffn_down.weight"]) - expected).max() > error


def test_two_adapters_add_up(tmp_path):
    base = write_base(tmp_path / "base.gguf")
    (a1, b1), (a2, b2) = pair(4, 64, 32, 3), pair(4, 64, 32, 4)
    one = write_adapter(tmp_path / "1.gguf", {"blk.0.attn_q.weight": (a1, b1)}, alpha=4.0)
    two = write_adapter(tmp_path / "2.gguf", {"blk.0.attn_q.weight": (a2, b2)}, alpha=4.0)
    merge_lora(base, (one, two), tmp_path / "m.gguf", tensor_type="F32")
    _, merged = tensors(tmp_path / "m.gguf")
    np.testing.assert_allclose(weights(merged["blk.0.attn_q.weight"]), Q + b1 @ a1 + b2 @ a2, rtol=1e-5, atol=1e-4)


def test_mismatched_adapters_are_refused_and_nothing_is_written(tmp_path):
    base = write_base(tmp_path / "base.gguf")
    out = tmp_path / "m.gguf"
    other_arch = write_adapter(tmp_path / "q.gguf", {"blk.0.attn_q.weight": pair(4, 64, 32, 5)}, arch="qwen2")
    with pytest.raises(ConfigurationError, match="architecture 'qwen2'"):
        merge_lora(base, (other_arch,), out)
    unknown = write_adapter(tmp_path / "u.gguf", {"blk.9.attn_q.weight": pair(4, 64, 32, 6)})
    with pytest.raises(ConfigurationError, match=r"does not have: \['blk.9.attn_q.weight'\]"):
        merge_lora(base, (unknown,), out)
    wrong_shape = write_adapter(tmp_path / "w.gguf", {"blk.0.attn_q.weight": pair(4, 32, 32, 7)})
    with pytest.raises(ConfigurationError, match="shape"):
        merge_lora(base, (wrong_shape,), out)
    with pytest.raises(ConfigurationError, match="not a GGUF LoRA adapter"):
        merge_lora(base, (LoraAdapter.load(base),), out)
    ok = write_adapter(tmp_path / "ok.gguf", {"blk.0.attn_q.weight": pair(4, 64, 32, 8)})
    with pytest.raises(ConfigurationError, match="unknown GGUF tensor type 'Q3'"):
        merge_lora(base, (ok,), out, tensor_type="Q3")
    assert not out.exists() and not list(tmp_path.glob(".m.gguf*"))
