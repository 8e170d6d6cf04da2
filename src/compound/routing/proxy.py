"""A cheap first stage that is not an LLM: a local sentence embedding (all-mpnet-base-v2 where installed,
else all-MiniLM-L6-v2, both shipped in PyPI packages) and a logistic regression trained on calibration
labels, as LOTUS's helper models and FrugalGPT's scorer do. The embedder is chosen when the classifier is
first trained and saved with it (a saved classifier without one used MiniLM). Its confidence is the predicted probability of its answer. Its parameters are
plain lists, saved with the program as JSON; its CPU time is counted like any model call's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compound.core.errors import InputError
from compound.core.settings import get_settings
from compound.core.usage import Usage, active_trackers, process_cpu


def record_local_work(wall_s: float, cpu_s: float) -> Usage:
    """Count work done in process outside any backend (an embedding, a classifier) in every tracker."""
    usage = Usage(
        calls=1, wall_s=wall_s, cpu_s=cpu_s, energy_j=cpu_s * get_settings().watts_per_core, energy_estimated=True
    )
    for t in active_trackers():
        t.record(usage, cached=False)
    return usage


def embed_texts(texts: Sequence[str], model_path: str | None = None) -> Any:
    """Unit-length sentence embeddings (float32 rows), their CPU time counted in every active tracker.
    ``model_path``: a sentence-transformers folder or an embedder's name (default: all-MiniLM-L6-v2)."""
    from compound.retrieval.dense import load_embedder

    with process_cpu() as spent:
        vectors = load_embedder(model_path).encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
    record_local_work(*spent)
    return vectors.astype("float32")


class EmbeddingClassifier:
    def __init__(
        self,
        labels: Sequence[str] | None = None,
        coef: list[list[float]] | None = None,
        intercept: list[float] | None = None,
        model_path: str | None = None,
        embedder: str | None = None,
    ) -> None:
        self.labels = list(labels or [])
        self.coef = coef
        self.intercept = intercept
        self.model_path = model_path  # an explicit sentence-transformers folder, else the named embedder
        self.embedder = embedder

    def blank(self) -> EmbeddingClassifier:
        """An untrained classifier of the same kind (for cross-fitting)."""
        return EmbeddingClassifier(model_path=self.model_path, embedder=self.embedder)

    @property
    def trained(self) -> bool:
        return self.coef is not None

    def embed(self, texts: Sequence[str]) -> Any:
        from compound.retrieval.dense import best_embedder

        if self.model_path is None:
            self.embedder = self.embedder or best_embedder()
        return embed_texts(texts, self.model_path or self.embedder)

    def fit(self, texts: Sequence[str], labels: Sequence[str], C: float = 4.0) -> EmbeddingClassifier:
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise InputError("the proxy needs at least two distinct labels to learn from")
        clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(self.embed(texts), list(labels))
        self.labels = [str(c) for c in clf.classes_]
        coef, intercept = clf.coef_, clf.intercept_
        if len(self.labels) == 2:  # sklearn stores one row for two classes: expand to one per label
            coef = [(-coef[0]).tolist(), coef[0].tolist()]
            intercept = [-float(intercept[0]), float(intercept[0])]
        else:
            coef, intercept = coef.tolist(), intercept.tolist()
        self.coef, self.intercept = [list(map(float, r)) for r in coef], [float(x) for x in intercept]
        return self

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(label, probability of that label) per text."""
        import numpy as np

        if not self.trained:
            raise InputError("the proxy is not trained: calibrate the cascade first")
        logits = self.embed(texts) @ np.asarray(self.coef).T + np.asarray(self.intercept)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        return [(self.labels[b], float(probs[i, b])) for i, b in enumerate(best)]

    def state(self) -> dict[str, Any]:
        return {"labels": self.labels, "coef": self.coef, "intercept": self.intercept, "embedder": self.embedder}

    def load_state(self, state: dict[str, Any]) -> None:
        from compound.retrieval.dense import MINILM

        self.labels, self.coef, self.intercept = state["labels"], state["coef"], state["intercept"]
        embedder = state.get("embedder") or MINILM
        if embedder != self.embedder:
            self.embedder, self.model_path = embedder, None
