"""Local students that are a softmax-linear head over features: the one mechanism behind the embedding
proxy (``optimize.students.embedding``) and the tabular student (``optimize.students.tabular``).

Guarantees:
- **What is certified is what is deployed.** ``cross_fit`` trains one head per fold (stratified: each
  label's rows are dealt round the folds), answers every row out of fold, and keeps *those* heads: the
  deployed classifier averages their probabilities. The out-of-fold answers on which a cascade learns its
  threshold therefore come from the very models that answer later, not from a refit on all rows, which is
  more confident than its folds and would be accepted beyond what was certified (``benchmarks/README.md``
  has the simulation).
  ``fit`` (no certificate wanted) keeps a single head trained on every row.
- **Features are computed once per text** in ``cross_fit`` (an embedding is the costly part), and all
  local work (features, fitting, predicting) is counted like any model call's.
- Parameters are plain lists, saved as JSON. A save holding one ``coef``/``intercept`` (the format before
  fold heads) loads as a single head.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from compound.core.errors import InputError
from compound.core.usage import local_work

#: the logit of a label a fold head never saw (its probability underflows to about 1e-13)
ABSENT = -30.0


def stratified_folds(labels: Sequence[str], folds: int) -> list[int]:
    """The fold of every row: the n-th row of each label goes to fold n % folds."""
    dealt: Counter[str] = Counter()
    out = []
    for label in labels:
        out.append(dealt[label] % folds)
        dealt[label] += 1
    return out


Finite = Annotated[float, Field(allow_inf_nan=False)]


class Head(BaseModel):
    coef: list[list[Finite]]
    intercept: list[Finite]


class LinearState(BaseModel):
    """A saved linear student, checked before anything is loaded: one coefficient row and one intercept
    per label in every head, all rows of one width (other keys belong to the subclass)."""

    model_config = ConfigDict(extra="allow")
    labels: list[str]
    heads: list[Head] | None = None
    coef: list[list[Finite]] | None = None  # the single-head format
    intercept: list[Finite] | None = None

    @model_validator(mode="after")
    def _shapes(self) -> LinearState:
        heads = self.heads if self.heads is not None else []
        if self.heads is None and self.coef is not None:
            heads = [Head(coef=self.coef, intercept=self.intercept or [])]
        widths = {len(row) for h in heads for row in h.coef}
        for h in heads:
            if len(h.coef) != len(self.labels) or len(h.intercept) != len(self.labels):
                raise ValueError(
                    f"a head has {len(h.coef)} coefficient rows and {len(h.intercept)} intercepts for "
                    f"{len(self.labels)} labels; save the student again"
                )
        if len(widths) > 1:
            raise ValueError(f"the heads' coefficient rows differ in width ({sorted(widths)}); save the student again")
        return self


class LinearClassifier:
    """Subclasses say how texts become features (``features``) and may learn an unsupervised transform on
    all texts first (``learn_features``). ``heads`` holds one (coef, intercept) per member, over ``labels``."""

    C = 1.0
    class_weight: str | None = None

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.heads: list[dict[str, list[Any]]] = []

    # --- what a subclass provides
    def learn_features(self, texts: Sequence[str]) -> None:
        """Set up the feature transform from texts alone (no labels); default: nothing to learn."""

    def features(self, texts: Sequence[str]) -> Any:
        raise NotImplementedError

    # --- the one mechanism
    @property
    def trained(self) -> bool:
        return bool(self.heads)

    def _head(self, x: Any, labels: Sequence[str]) -> dict[str, list[Any]]:
        """A logistic regression on (x, labels), one coefficient row per label of ``self.labels``."""
        import numpy as np
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression

        width, used = x.shape[1], None
        if sparse.issparse(x):  # fit on the columns some row uses: the L2 penalty keeps the others at 0 exactly
            used = np.flatnonzero(x.getnnz(axis=0))
            x = x[:, used]
        with warnings.catch_warnings():  # a first round has few rows per label; sklearn warns it may be regression
            warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
            clf = LogisticRegression(C=self.C, max_iter=5000, class_weight=self.class_weight).fit(x, list(labels))
        classes = [str(c) for c in clf.classes_]
        coef, intercept = np.asarray(clf.coef_), np.asarray(clf.intercept_)
        if used is not None:
            full = np.zeros((coef.shape[0], width))
            full[:, used] = coef
            coef = full
        if len(classes) == 2:  # sklearn keeps one row for two classes: one per label
            coef, intercept = np.vstack([-coef[0], coef[0]]), np.array([-intercept[0], intercept[0]])
        rows = {c: (coef[i].tolist(), float(intercept[i])) for i, c in enumerate(classes)}
        zero = [0.0] * width
        return {
            "coef": [rows[c][0] if c in rows else zero for c in self.labels],
            "intercept": [rows[c][1] if c in rows else ABSENT for c in self.labels],
        }

    def _probabilities(self, x: Any) -> Any:
        """The members' softmax probabilities, averaged (rows x labels)."""
        import numpy as np

        total = np.zeros((x.shape[0], len(self.labels)))
        for head in self.heads:
            logits = x @ np.asarray(head["coef"]).T + np.asarray(head["intercept"])
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            total += p / p.sum(axis=1, keepdims=True)
        return total / len(self.heads)

    @staticmethod
    def _answers(probs: Any, labels: Sequence[str]) -> list[tuple[str, float]]:
        best = probs.argmax(axis=1)
        return [(labels[int(b)], float(probs[i, b])) for i, b in enumerate(best)]

    def _check(self, labels: Sequence[str]) -> None:
        if len(set(labels)) < 2:
            raise InputError(f"{type(self).__name__} needs at least two distinct labels to learn from")

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LinearClassifier:
        """One head trained on every row."""
        self._check(labels)
        self.learn_features(texts)
        x = self.features(texts)
        with local_work():
            self.labels = sorted({str(label) for label in labels})
            self.heads = [self._head(x, labels)]
        return self

    def cross_fit(self, texts: Sequence[str], labels: Sequence[str], folds: int = 4) -> list[tuple[str, float]]:
        """Out-of-fold answers for every row; the fold heads become the deployed members (see the module).

        A fold whose training rows hold a single label cannot learn: its rows answer with confidence 0
        (never accepted) and it adds no member."""
        self._check(labels)
        self.learn_features(texts)
        x = self.features(texts)
        fold_of = stratified_folds(labels, folds)
        answers: list[tuple[str, float]] = [("", 0.0)] * len(texts)
        with local_work():
            self.labels = sorted({str(label) for label in labels})
            heads = []
            for k in range(folds):
                train = [i for i, f in enumerate(fold_of) if f != k]
                test = [i for i, f in enumerate(fold_of) if f == k]
                if not test:
                    continue
                seen = {labels[i] for i in train}
                if len(seen) < 2:
                    answers = [(next(iter(seen), ""), 0.0) if i in test else a for i, a in enumerate(answers)]
                    continue
                head = self._head(x[train], [labels[i] for i in train])
                self.heads = [head]
                for i, answer in zip(test, self._answers(self._probabilities(x[test]), self.labels), strict=True):
                    answers[i] = answer
                heads.append(head)
            self.heads = heads or [self._head(x, labels)]
        return answers

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(label, averaged probability of that label) per text."""
        if not self.trained:
            raise InputError(f"{type(self).__name__} is not trained: calibrate the cascade first")
        x = self.features(texts)
        with local_work():
            answers = self._answers(self._probabilities(x), self.labels)
        return answers

    def head_state(self) -> dict[str, Any]:
        return {"labels": self.labels, "heads": self.heads}

    @staticmethod
    def check_state(state: Any) -> str | None:
        """What is wrong with a saved state (its shapes and numbers, ``LinearState``), or None."""
        try:
            LinearState.model_validate(state, strict=True)
        except ValidationError as e:
            return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'state'}: {err['msg']}" for err in e.errors())
        return None

    def load_head_state(self, state: dict[str, Any]) -> None:
        self.labels = list(state["labels"])
        if "heads" in state:
            self.heads = [{"coef": h["coef"], "intercept": h["intercept"]} for h in state["heads"]]
        else:  # the single-head format
            self.heads = [] if state.get("coef") is None else [{"coef": state["coef"], "intercept": state["intercept"]}]
