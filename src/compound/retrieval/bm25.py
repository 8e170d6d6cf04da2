"""BM25 over ``bm25s``: fast sparse scoring, saved to disk without pickle."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError
from compound.retrieval.base import Document, Hit, as_documents, check_index_size, read_index_dir, write_index_dir


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(w, str) for w in value)


class BM25Retriever:
    kind = "bm25"

    def __init__(self, documents: Iterable[Document | str] = (), *, stopwords: str | None = "en") -> None:
        self.stopwords = stopwords
        self.documents: list[Document] = []
        self._index: Any = None
        self.add(documents)

    def add(self, documents: Iterable[Document | str]) -> None:
        new = as_documents(documents, start=len(self.documents))
        if new:
            self.documents = as_documents(self.documents + new)
            self._build()

    @property
    def _stopwords(self) -> str | list[str]:
        return self.stopwords if self.stopwords is not None else []  # none removed

    def _build(self) -> None:
        import bm25s

        self._index = bm25s.BM25()
        tokens = bm25s.tokenize([d.text for d in self.documents], stopwords=self._stopwords, show_progress=False)
        self._index.index(tokens, show_progress=False)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        import bm25s

        if not self.documents:
            return []
        k = min(k, len(self.documents))
        tokens: Any = bm25s.tokenize([query], stopwords=self._stopwords, show_progress=False)
        if not tokens.vocab:  # nothing searchable in the query (only stopwords)
            return []
        ids, scores = self._index.retrieve(tokens, k=k, show_progress=False)
        return [Hit(self.documents[int(i)], float(s)) for i, s in zip(ids[0], scores[0], strict=False) if s > 0]

    def save(self, path: str | Path) -> Path:
        return write_index_dir(
            Path(path),
            self.kind,
            self.documents,
            {"stopwords": self.stopwords},
            lambda d: self._index.save(str(d / "bm25"), allow_pickle=False),
        )

    @classmethod
    def load(cls, path: str | Path) -> BM25Retriever:
        import bm25s

        manifest, docs = read_index_dir(Path(path), cls.kind)
        stopwords = manifest.get("stopwords")
        if not (stopwords is None or isinstance(stopwords, str) or _strings(stopwords)):
            raise ConfigurationError(f"{path}/manifest.json: stopwords must be a language name or a list of words")
        r = cls(stopwords=stopwords)
        r.documents = docs
        try:
            r._index = bm25s.BM25.load(str(Path(path) / "bm25"), allow_pickle=False)
            size = int(r._index.scores["num_docs"])
        except Exception as e:
            raise ConfigurationError(
                f"{path}/bm25 cannot be loaded ({type(e).__name__}: {e}); rebuild the index and save it again"
            ) from None
        check_index_size(Path(path), "BM25 index", size, docs)
        return r
