"""A cheap first stage that is not an LLM: a local sentence embedding (all-mpnet-base-v2 where installed,
else all-MiniLM-L6-v2, both shipped in PyPI packages) and a logistic regression trained on calibration
labels, as LOTUS's helper models and FrugalGPT's scorer do. The embedder is chosen when the classifier is
first trained and saved with it (a saved classifier without one used MiniLM). Its confidence is the
predicted probability of its answer; cross-fitted, it deploys the average of its fold heads, the models
its certificate is about (``optimize.students.linear``). Its parameters are plain lists, saved with the program as
JSON; its CPU time is counted like any model call's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compound.core.usage import local_work
from compound.optimize.students.linear import LinearClassifier


def embed_texts(texts: Sequence[str], model_path: str | None = None) -> Any:
    """Unit-length sentence embeddings (float32 rows), their CPU time counted in every active tracker.
    ``model_path``: a sentence-transformers folder or an embedder's name (default: all-MiniLM-L6-v2)."""
    from compound.retrieval.dense import load_embedder

    with local_work():
        vectors = load_embedder(model_path).encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    return vectors.astype("float32")


class EmbeddingClassifier(LinearClassifier):
    C = 4.0
    class_weight = "balanced"

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        coef: list[list[float]] | None = None,
        intercept: list[float] | None = None,
        model_path: str | None = None,
        embedder: str | None = None,
    ) -> None:
        super().__init__()
        self.load_head_state({"labels": list(labels or []), "coef": coef, "intercept": intercept})
        self.model_path = model_path  # an explicit sentence-transformers folder, else the named embedder
        self.embedder = embedder

    def features(self, texts: Sequence[str]) -> Any:
        from compound.retrieval.dense import best_embedder

        if self.model_path is None:
            self.embedder = self.embedder or best_embedder()
        return embed_texts(texts, self.model_path or self.embedder)

    def state(self) -> dict[str, Any]:
        return {**self.head_state(), "embedder": self.embedder}

    def load_state(self, state: dict[str, Any]) -> None:
        from compound.retrieval.dense import MINILM

        self.load_head_state(state)
        embedder = state.get("embedder") or MINILM
        if embedder != self.embedder:
            self.embedder, self.model_path = embedder, None


class PrecomputedEmbeddings(EmbeddingClassifier):
    """The embedding student over embeddings computed once; rows are given by their index in ``vectors``
    (``auto``'s label rounds refit it many times on one embedding pass). ``extra``: more features per row
    (a sparse matrix, ``students.ngrams.char_ngrams``), appended to the embedding; ``vectors`` alone stay
    what rows are clustered by (``students.active``)."""

    def __init__(self, vectors: Any, extra: Any = None) -> None:
        super().__init__()
        self.vectors = vectors
        self._all: Any = vectors  # every row's features, joined once: the rounds read them many times
        if extra is not None:
            from scipy import sparse

            self._all = sparse.hstack([sparse.csr_matrix(vectors), extra], format="csr")

    def features(self, texts: Any) -> Any:
        return self._all[list(texts)]

    def probabilities(self, rows: Sequence[int]) -> Any:
        """Rows x labels probabilities of the deployed heads (averaged), counted as local work."""
        with local_work():
            return self._probabilities(self.features(rows))
