"""The retriever protocol, documents, and the ``Retrieve`` step.

An index folder holds ``manifest.json``, ``documents.jsonl`` and the retriever's arrays. Loading one is
validation: the manifest against its schema (format, kind, a whole-number version this compound reads, the
number of documents), every document line (an object with a string ``id`` and ``text``, an object
``meta``, ids distinct), and the count of documents against the manifest and the arrays. A file that
fails any check raises ``ConfigurationError`` naming the file, the line or field, and the fix; nothing
deeper than ``savedjson.MAX_DEPTH`` is parsed. Saving creates missing folders or says why it cannot.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compound.core.errors import ConfigurationError
from compound.core.savedjson import parse_json, prepare_folder, read_json
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
    prepare_folder(path, f"{kind} index", is_folder=True)
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


class IndexManifest(BaseModel):
    """The schema of an index folder's ``manifest.json`` (retrievers add their own fields)."""

    model_config = ConfigDict(extra="allow", strict=True)
    format: Literal["compound.index"]
    version: int = Field(ge=1)
    kind: str
    documents: int = Field(ge=0)


class _DocumentLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str
    text: str
    meta: dict[str, Any] = {}


def _fields(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in e.errors()[:3])


def read_index_dir(path: Path, kind: str) -> tuple[dict[str, Any], list[Document]]:
    """The manifest and documents of an index folder, each checked (see the module docstring)."""
    path = Path(path)
    fix = f"rebuild the index and save it again to {path}"
    if not path.is_dir():
        raise ConfigurationError(f"{path} is not a compound index folder (no such folder); check the path")
    if not (path / "manifest.json").is_file():
        raise ConfigurationError(f"{path} is not a compound index folder (it has no manifest.json); check the path")
    raw = read_json(path / "manifest.json", "index manifest")
    if isinstance(raw, dict) and isinstance(raw.get("version"), int) and raw["version"] > INDEX_VERSION:
        raise ConfigurationError(
            f"{path} was written by a newer compound (index version {raw['version']}, this one reads up to "
            f"{INDEX_VERSION}); upgrade compound"
        )
    try:
        manifest = IndexManifest.model_validate(raw)
    except ValidationError as e:
        raise ConfigurationError(f"index manifest {path / 'manifest.json'} is not valid: {_fields(e)}; {fix}") from None
    if manifest.kind != kind:
        raise ConfigurationError(f"{path} holds a {manifest.kind!r} index, not a {kind!r} one")
    docs, seen = [], set()
    where = path / "documents.jsonl"
    try:
        lines = where.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"cannot read {where}: {e}; {fix}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        source = f"{where} line {number}"
        try:
            d = _DocumentLine.model_validate(parse_json(line, source))
        except ValidationError as e:
            raise ConfigurationError(f"{source} is not a document: {_fields(e)}; {fix}") from None
        if d.id in seen:
            raise ConfigurationError(f"{source}: document id {d.id!r} appears twice; {fix}")
        seen.add(d.id)
        docs.append(Document(d.id, d.text, d.meta))
    if len(docs) != manifest.documents:
        raise ConfigurationError(
            f"{where} holds {len(docs)} documents but the manifest says {manifest.documents}; {fix}"
        )
    return manifest.model_dump(), docs


def check_index_size(path: Path, what: str, size: int, documents: list[Document]) -> None:
    """The retriever's arrays must index exactly the documents."""
    if size != len(documents):
        raise ConfigurationError(
            f"{path}: {len(documents)} documents but the {what} holds {size}; rebuild the index and save it again"
        )


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
