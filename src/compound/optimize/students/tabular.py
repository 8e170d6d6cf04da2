"""A classical student for table rows: logistic regression on the row's other columns, no LLM.

It reads rows as ``render_row`` writes them ("column: value" per line): numbers become numeric features,
anything else one-hot features (scikit-learn's ``DictVectorizer``), plus pairwise products (so a
species and a body mass can interact), standardised. Its confidence is the predicted probability of its
answer. It is a ``optimize.students.linear`` head, like the embedding proxy: cross-fitted, it deploys its fold heads;
the feature set and the standardisation are learned from the rows' values alone, never their labels. Its
parameters are plain lists, saved with the program as JSON; its local work is counted like a model call's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compound.core.usage import local_work
from compound.optimize.students.linear import LinearClassifier
from compound.program.rows import parse_row


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


class TabularClassifier(LinearClassifier):
    def __init__(self, state: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.load_state(state or {"labels": [], "features": [], "mean": None, "scale": None, "coef": None})

    def _matrix(self, texts: Sequence[str]) -> Any:
        import numpy as np

        x = row_matrix(texts, self.features_)
        n = x.shape[1]
        pairs = [x[:, i] * x[:, j] for i in range(n) for j in range(i, n)]
        return np.column_stack([x, *pairs]) if pairs else x

    def learn_features(self, texts: Sequence[str]) -> None:
        import numpy as np

        with local_work():
            self.features_ = feature_names(texts)
            x = self._matrix(texts)
            std = x.std(axis=0)
            self.mean, self.scale = x.mean(axis=0).tolist(), np.where(std > 0, std, 1.0).tolist()

    def features(self, texts: Sequence[str]) -> Any:
        with local_work():
            return (self._matrix(texts) - self.mean) / self.scale

    def state(self) -> dict[str, Any]:
        return {**self.head_state(), "features": self.features_, "mean": self.mean, "scale": self.scale}

    def load_state(self, state: dict[str, Any]) -> None:
        self.load_head_state(state)
        self.features_, self.mean, self.scale = list(state["features"]), state["mean"], state["scale"]
