"""Merge GGUF LoRA adapters into their base model's weights: one GGUF file that serves as fast as the base.

llama.cpp applies an unmerged adapter as two extra small matrix products (and an add) beside every
adapted weight, on every token. On few cores those tiny products cost more in thread synchronisation than
in arithmetic (``benchmarks/distill_extract.py`` records the served student's cost; ``benchmarks/README.md``
has the figures). Merging removes them:
``W' = W + scale * (alpha / r) * B @ A`` for each adapted tensor, the same formula llama.cpp evaluates.

Guarantees:
- every metadata key and every tensor of the base is copied unchanged, except the adapted weights and
  ``general.name``; ``compound.merged.adapters`` records each adapter's sha256 and scale;
- an adapted weight is stored in Q8_0, or in the base's own type where that is F32 or F16; ``tensor_type``
  (any type the ``gguf`` package can quantize to) overrides it. Q8_0 because a LoRA's change is small
  beside a 4-bit type's rounding step: merged back into a 4-bit type, a student's change can be rounded
  away, so that the model answers as its base did. In Q8_0 it answers as the adapter did, and decodes as
  fast as the 4-bit base (``benchmarks/README.md``);
- an adapter for another architecture, or naming a tensor the base does not have or with the wrong
  shape, is refused with the names; nothing is written;
- the file is written to a temporary name and renamed: a reader never sees half a model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError
from compound.models.lora import LoraAdapter

#: stored as they are (numpy float types), no quantizer needed
_FLOAT_TYPES = {"F32": "float32", "F16": "float16"}
_DEFAULT_TYPE = "Q8_0"


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def _adapter_deltas(reader: Any, scale: float) -> dict[str, Any]:
    """Base tensor name -> ``scale * alpha / r * B @ A`` (float32, numpy shape ``(out, in)``)."""
    import numpy as np

    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise ConfigurationError("not a GGUF LoRA adapter (general.type must be 'adapter', adapter.type 'lora')")
    alpha = _field(reader, "adapter.lora.alpha")
    tensors = {t.name: t for t in reader.tensors}
    deltas = {}
    for name, a in tensors.items():
        if not name.endswith(".lora_a"):
            continue
        target = name.removesuffix(".lora_a")
        b = tensors.get(f"{target}.lora_b")
        if b is None:
            raise ConfigurationError(f"the adapter has {name} but no {target}.lora_b")
        a_w, b_w = np.asarray(a.data, dtype=np.float32), np.asarray(b.data, dtype=np.float32)
        rank = a_w.shape[0]
        factor = scale * (float(alpha) / rank if alpha else 1.0)  # llama.cpp: no alpha means scale 1
        deltas[target] = factor * (b_w @ a_w)
    if not deltas:
        raise ConfigurationError("the adapter has no lora_a/lora_b tensor pairs")
    return deltas


def _store(weights: Any, base_type: Any, tensor_type: str | None) -> tuple[Any, Any]:
    """``weights`` (float32) in ``tensor_type``, else the base's float type, else Q8_0: (array, GGML type)."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    if tensor_type:
        try:
            wanted = GGMLQuantizationType[tensor_type.upper()]
        except KeyError:
            raise ConfigurationError(f"unknown GGUF tensor type {tensor_type!r}; choose Q8_0, F16 or F32") from None
    else:
        wanted = base_type if base_type.name in _FLOAT_TYPES else GGMLQuantizationType[_DEFAULT_TYPE]
    if wanted.name in _FLOAT_TYPES:
        return weights.astype(getattr(np, _FLOAT_TYPES[wanted.name])), wanted
    try:
        return quants.quantize(weights, wanted), wanted
    except NotImplementedError:
        raise ConfigurationError(
            f"the gguf package cannot quantize to {tensor_type}; choose Q8_0, Q5_1, Q5_0, Q4_1, Q4_0, F16 or F32"
        ) from None


def merge_lora(
    base: Path, adapters: tuple[LoraAdapter, ...], out: Path, *, tensor_type: str | None = None
) -> dict[str, Any]:
    """Write ``base`` with ``adapters`` merged into its weights to ``out``. Returns what was done: the
    merged tensors' count and types, and the file written."""
    import numpy as np
    from gguf import GGUFReader, GGUFWriter, quants

    base_reader = GGUFReader(str(base))
    arch = _field(base_reader, "general.architecture")
    deltas: dict[str, Any] = {}
    for adapter in adapters:
        reader = GGUFReader(str(adapter.path))
        if _field(reader, "general.architecture") != arch:
            raise ConfigurationError(
                f"adapter {adapter.path} is for architecture {_field(reader, 'general.architecture')!r}, "
                f"the base {base} is {arch!r}"
            )
        for name, delta in _adapter_deltas(reader, adapter.scale).items():
            deltas[name] = deltas[name] + delta if name in deltas else delta
    tensors = {t.name: t for t in base_reader.tensors}
    unknown = sorted(set(deltas) - set(tensors))
    if unknown:
        raise ConfigurationError(f"the adapters name tensors the base {base.name} does not have: {unknown[:5]}")

    merged: dict[str, tuple[Any, Any]] = {}
    for name, delta in deltas.items():
        t = tensors[name]
        weights = np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if weights.shape != delta.shape:
            raise ConfigurationError(
                f"adapter tensor for {name} has shape {delta.shape}, the base's is {weights.shape}"
            )
        merged[name] = _store(weights + delta, t.tensor_type, tensor_type)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    writer = GGUFWriter(str(tmp), arch, endianess=base_reader.endianess)
    try:
        for field in base_reader.fields.values():
            if field.name == "general.architecture" or field.name.startswith("GGUF.") or field.name == "general.name":
                continue
            kind = field.types[0]
            sub = field.types[-1] if kind.name == "ARRAY" else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        writer.add_name(f"{_field(base_reader, 'general.name') or base.stem} + LoRA (merged)")
        writer.add_string(
            "compound.merged.adapters", json.dumps([{"sha256": a.sha256, "scale": a.scale} for a in adapters])
        )
        for t in base_reader.tensors:
            data, qtype = merged.get(t.name, (t.data, t.tensor_type))
            writer.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in base_reader.tensors:
            writer.write_tensor_data(merged[t.name][0] if t.name in merged else t.data)
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    types = sorted({q.name for _, q in merged.values()})
    return {"file": str(out), "merged_tensors": len(merged), "types": types}


__all__ = ["merge_lora"]
