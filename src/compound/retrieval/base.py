"""The retriever protocol, documents, and the ``Retrieve`` step."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compound.core.errors import ConfigurationError
from compound.program.module import Module

INDEX_FORMAT = "compound.index"
INDEX_VERSION = 1


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    document: Document
    score: float


class Retriever(Protocol):
    def add(self, documents: Iterable[Document | str]) -> None: ...
    def search(self, query: str, k: int = 5) -> list[Hit]: ...
    def save(self, path: str | Path) -> Path: ...


def as_documents(items: Iterable[Document | str], start: int = 0) -> list[Document]:
    docs = []
    for i, item in enumerate(items, start):
        docs.append(item if isinstance(item, Document) else Document(str(i), str(item)))
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise ConfigurationError("document ids must be unique")
    return docs


def write_index_dir(path: Path, kind: str, documents: list[Document], extra: dict[str, Any], write_arrays) -> Path:
    """Write an index folder atomically: a manifest, the documents as JSON Lines, and the arrays."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "kind": kind, "documents": len(documents), **extra}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with open(tmp / "documents.jsonl", "w") as f:
        for d in documents:
            f.write(json.dumps({"id": d.id, "text": d.text, "meta": d.meta}) + "\n")
    write_arrays(tmp)
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    return path


def read_index_dir(path: Path, kind: str) -> tuple[dict[str, Any], list[Document]]:
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigurationError(f"{path} is not a compound index folder: {e}") from None
    if manifest.get("format") != INDEX_FORMAT or manifest.get("kind") != kind:
        raise ConfigurationError(f"{path} holds a {manifest.get('kind')!r} index, not a {kind!r} one")
    if manifest.get("version", 0) > INDEX_VERSION:
        raise ConfigurationError(f"{path} was written by a newer compound (index version {manifest['version']})")
    docs = []
    with open(path / "documents.jsonl") as f:
        for line in f:
            d = json.loads(line)
            docs.append(Document(d["id"], d["text"], d.get("meta", {})))
    return manifest, docs


class Retrieve(Module):
    """A retrieval step: ``Retrieve(retriever, k=3)(query=...)`` returns the top-k documents' texts."""

    parameter_names = ("k",)

    def __init__(self, retriever: Retriever, k: int = 3, name: str | None = None) -> None:
        self.retriever = retriever
        self.k = k
        self.name = name

    @property
    def step_name(self) -> str:
        return self.name or "Retrieve"

    def forward(self, query: str) -> list[str]:
        return [h.document.text for h in self.retriever.search(query, self.k)]
