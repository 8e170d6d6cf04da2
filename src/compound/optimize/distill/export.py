"""Write a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp loads next to its base GGUF.

Guarantees:
- the file carries ``general.type = "adapter"``, the base's ``general.architecture``, ``adapter.type =
  "lora"`` and ``adapter.lora.alpha`` (llama.cpp scales by ``alpha / r`` itself, as PEFT does);
- tensors come in pairs ``<base tensor>.lora_a`` (numpy shape ``(r, in)``) and ``.lora_b`` (``(out, r)``),
  PEFT's own layout, which gguf-py writes as the ``ne`` order llama.cpp checks;
- for llama-architecture bases, the rows of ``lora_b`` for ``attn_q``/``attn_k`` are permuted exactly as
  llama.cpp's converter permutes the base weights (transformers undoes that permutation when it loads a
  GGUF, so the HF-side adapter is in HF row order);
- the file is written to a temporary name and renamed, so a reader never sees half an adapter.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError

#: HF module suffix -> GGUF tensor stem (llama.cpp's tensor map for llama/qwen2-style decoders)
MODULE_MAP = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
TARGET_MODULES = [k.split(".")[-1] for k in MODULE_MAP]
_NAME = re.compile(r"(?:.*\.)?layers\.(\d+)\.(" + "|".join(re.escape(k) for k in MODULE_MAP) + r")$")
#: architectures whose converter permutes Q/K rows (``LlamaModel.permute`` in convert_hf_to_gguf.py)
PERMUTED_ARCHS = {"llama"}


def gguf_name(module: str) -> str:
    """``model.layers.3.self_attn.q_proj`` -> ``blk.3.attn_q.weight``."""
    m = _NAME.fullmatch(module)
    if m is None:
        raise ConfigurationError(f"no GGUF tensor for module {module!r}; LoRA targets are {', '.join(MODULE_MAP)}")
    return f"blk.{m.group(1)}.{MODULE_MAP[m.group(2)]}.weight"


def permute_rows(w: Any, n_head: int) -> Any:
    """llama.cpp's Q/K row order: per head, interleaved rotary halves become contiguous pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def base_architecture(base_gguf: Path) -> dict[str, Any]:
    """The base GGUF's architecture and head counts (read from its metadata, no tensors loaded)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(base_gguf))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        if f is None:
            return None
        value = f.parts[f.data[0]]
        return bytes(value).decode() if f.types and f.types[0].name == "STRING" else value.tolist()[0]

    arch = field("general.architecture")
    return {
        "arch": arch,
        "n_head": field(f"{arch}.attention.head_count"),
        "n_head_kv": field(f"{arch}.attention.head_count_kv") or field(f"{arch}.attention.head_count"),
    }


def lora_pairs(peft_model: Any) -> dict[str, tuple[Any, Any]]:
    """HF module name -> (A, B) as float32 numpy arrays, from a PEFT model's default adapter."""
    pairs: dict[str, tuple[Any, Any]] = {}
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            clean = name.removeprefix("base_model.model.")
            a = module.lora_A["default"].weight.detach().float().cpu().numpy()
            b = module.lora_B["default"].weight.detach().float().cpu().numpy()
            pairs[clean] = (a, b)
    if not pairs:
        raise ConfigurationError("the model has no LoRA layers to export")
    return pairs


def write_gguf_adapter(
    pairs: dict[str, tuple[Any, Any]], alpha: float, base_gguf: Path, out: Path, *, name: str = "compound-student"
) -> Path:
    """Write ``pairs`` (HF module -> (A, B)) as a GGUF LoRA adapter for ``base_gguf``."""
    import numpy as np
    from gguf import GGUFType, GGUFWriter

    info = base_architecture(base_gguf)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    writer = GGUFWriter(str(tmp), info["arch"])
    try:
        writer.add_type(GGUFType.ADAPTER)
        writer.add_name(name)
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(alpha))
        for module, (a, b) in sorted(pairs.items()):
            target = gguf_name(module)
            if info["arch"] in PERMUTED_ARCHS and target.split(".")[2] in ("attn_q", "attn_k"):
                heads = info["n_head"] if ".attn_q." in target else info["n_head_kv"]
                b = permute_rows(b, heads)
            writer.add_tensor(f"{target}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(f"{target}.lora_b", np.ascontiguousarray(b, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
