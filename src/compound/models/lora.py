"""LoRA adapters on local GGUF models, and the model spec that names a base model with its adapters.

    smollm2-135m+lora=/path/adapter.gguf            # scale 1
    smollm2-135m+lora=/path/adapter.gguf@0.5        # scale 0.5
    model.gguf+lora=/a.gguf+lora=/b.gguf@2          # several adapters, applied together

A student made by distillation is therefore a model name like any other (``compound.get_model(spec)``,
``--model spec``). Guarantees: an adapter must exist and be a GGUF file (checked when the spec is parsed,
with a message naming the fix); its identity is its content's sha256, never its path, so a backend with
adapters never shares cache entries with its base model or with other adapters, and a moved adapter
keeps its cache.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from compound.core.errors import ConfigurationError

LORA_MARK = "+lora="


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """A file's sha256, hashed once per process (whatever path names it) while its size and mtime stay the
    same: adapters, model files and distilled students all hash through here."""
    path = path.resolve()
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class LoraAdapter:
    """A GGUF LoRA adapter and the scale it is applied with."""

    path: Path
    scale: float = 1.0
    sha256: str = field(default="", compare=False)

    @classmethod
    def load(cls, path: str | Path, scale: float = 1.0) -> LoraAdapter:
        p = Path(path).expanduser().resolve()
        if not p.is_file():
            raise ConfigurationError(f"LoRA adapter {str(path)!r} does not exist: give the path of a GGUF adapter file")
        with open(p, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ConfigurationError(
                    f"LoRA adapter {str(path)!r} is not a GGUF file: convert it with llama.cpp's "
                    "convert_lora_to_gguf.py (or write it with the gguf package)"
                )
        return cls(p, float(scale), file_sha256(p))

    @property
    def identity(self) -> str:
        """What the cache keys on: the content hash and the scale."""
        return f"{LORA_MARK}{self.sha256}@{self.scale:g}"

    @property
    def spec(self) -> str:
        return f"{LORA_MARK}{self.path}" + ("" if self.scale == 1.0 else f"@{self.scale:g}")


def _parse_adapter(text: str) -> LoraAdapter:
    path, at, scale = text.rpartition("@")
    if at:
        try:
            return LoraAdapter.load(path, float(scale))
        except ValueError:
            pass  # an "@" that is part of the path
    return LoraAdapter.load(text)


def split_lora_spec(spec: str) -> tuple[str, tuple[LoraAdapter, ...]]:
    """``"base+lora=a.gguf@0.5"`` -> ("base", (LoraAdapter(a.gguf, 0.5),)); a spec without adapters -> (spec, ())."""
    base, *parts = spec.split(LORA_MARK)
    if parts and not base:
        raise ConfigurationError(f"model spec {spec!r} names adapters but no base model: write BASE+lora=PATH")
    return base, tuple(_parse_adapter(p) for p in parts)


def lora_spec(base: str, adapters: list[tuple[str | Path, float]] | tuple[LoraAdapter, ...]) -> str:
    """The model spec of a base model with adapters (the inverse of ``split_lora_spec``)."""
    loaded = [a if isinstance(a, LoraAdapter) else LoraAdapter.load(*a) for a in adapters]
    return base + "".join(a.spec for a in loaded)


__all__ = ["LORA_MARK", "LoraAdapter", "file_sha256", "lora_spec", "split_lora_spec"]
