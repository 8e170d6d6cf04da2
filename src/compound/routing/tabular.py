"""A classical student for table rows: logistic regression on the row's other columns, no LLM.

It reads rows as ``render_row`` writes them ("column: value" per line): numbers become numeric features,
anything else one-hot features (scikit-learn's ``DictVectorizer``), plus pairwise products (so a
species and a body mass can interact), standardised. Its confidence is the predicted probability of its
answer. Its parameters are plain lists, saved with the program as JSON; fitting and predicting are
counted as local work, like the embedding proxy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compound.core.usage import process_cpu
from compound.routing.proxy import record_local_work


def parse_row(text: str) -> dict[str, Any]:
    """``"a: 1\\nb: x"`` -> {"a": 1.0, "b": "x"}: numbers as floats, the rest as text."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value.strip()
    return out


def feature_names(texts: Sequence[str]) -> list[str]:
    names = set()
    for text in texts:
        for key, value in parse_row(text).items():
            names.add(key if isinstance(value, float) else f"{key}={value}")
    return sorted(names)


def row_matrix(texts: Sequence[str], features: Sequence[str]) -> Any:
    """Rows as numbers: numeric columns as they are, other values one-hot (``column=value``)."""
    import numpy as np

    index = {f: i for i, f in enumerate(features)}
    x = np.zeros((len(texts), len(features)))
    for r, text in enumerate(texts):
        for key, value in parse_row(text).items():
            name, v = (key, value) if isinstance(value, float) else (f"{key}={value}", 1.0)
            if name in index:
                x[r, index[name]] = v
    return x


class TabularClassifier:
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.load_state(
            state or {"labels": [], "features": [], "mean": None, "scale": None, "coef": None, "intercept": None}
        )

    def blank(self) -> TabularClassifier:
        return TabularClassifier()

    @property
    def trained(self) -> bool:
        return self.coef is not None

    def _matrix(self, texts: Sequence[str]) -> Any:
        import numpy as np

        x = row_matrix(texts, self.features)
        n = x.shape[1]
        pairs = [x[:, i] * x[:, j] for i in range(n) for j in range(i, n)]
        return np.column_stack([x, *pairs]) if pairs else x

    def fit(self, texts: Sequence[str], labels: Sequence[str], C: float = 1.0) -> TabularClassifier:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise ValueError("the tabular student needs at least two distinct labels to learn from")
        with process_cpu() as spent:
            self.features = feature_names(texts)
            x = self._matrix(texts)
            self.mean, self.scale = x.mean(axis=0).tolist(), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0).tolist()
            clf = LogisticRegression(C=C, max_iter=5000).fit((x - self.mean) / self.scale, list(labels))
            self.labels = [str(c) for c in clf.classes_]
            coef, intercept = clf.coef_, clf.intercept_
            if len(self.labels) == 2:
                coef, intercept = np.vstack([-coef[0], coef[0]]), np.array([-intercept[0], intercept[0]])
            self.coef, self.intercept = coef.tolist(), intercept.tolist()
        record_local_work(*spent)
        return self

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        import numpy as np

        if not self.trained:
            raise RuntimeError("the tabular student is not trained")
        with process_cpu() as spent:
            x = (self._matrix(texts) - self.mean) / self.scale
            logits = x @ np.asarray(self.coef).T + np.asarray(self.intercept)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            best = probs.argmax(axis=1)
        record_local_work(*spent)
        return [(self.labels[b], float(probs[i, b])) for i, b in enumerate(best)]

    def state(self) -> dict[str, Any]:
        keys = ("labels", "features", "mean", "scale", "coef", "intercept")
        return {k: getattr(self, k) for k in keys}

    def load_state(self, state: dict[str, Any]) -> None:
        self.labels, self.features = list(state["labels"]), list(state["features"])
        self.mean, self.scale = state["mean"], state["scale"]
        self.coef, self.intercept = state["coef"], state["intercept"]
