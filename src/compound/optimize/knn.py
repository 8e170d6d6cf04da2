"""``KNNFewShot``: for each input, the k most similar labelled examples become the step's demos.

Similarity is the cosine of MiniLM sentence embeddings (the packaged all-MiniLM-L6-v2, as dense retrieval
uses). The labelled examples are a program parameter (saved in the program's JSON); their embeddings are
an index on disk, ``<home>/knn/<sha256 of the examples>.npy`` (numpy, ``allow_pickle=False``), built once
and reused by every later run and by a loaded program. Embedding time is counted like model time.

For table rows (``space="table"``) similarity is instead the distance between rows' standardised column
values (numbers as they are, other values one-hot), which needs no embedding model.

A loaded program's ``examples``, ``k``, ``demo_chars`` and ``space`` are checked against their types and
the step's signature before anything is set; an on-disk index that does not load, or does not hold one
finite vector per example, is computed again and replaced.

Long example inputs are cut to ``demo_chars`` characters in demos, so k demos do not multiply a long
prompt's cost k times.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Literal

from compound.core.settings import get_settings
from compound.core.types import Message
from compound.optimize.base import Example, Metric, Optimizer, input_fields, the_step
from compound.program.module import Module
from compound.program.predict import Predict, render_inputs


def _index_path(texts: list[str]) -> Any:
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:32]
    return get_settings().home / "knn" / f"{digest}.npy"


def embed_cached(texts: list[str]) -> Any:
    """The examples' embeddings, read from the on-disk index or computed and written there (atomically)."""
    import numpy as np

    from compound.optimize.students.embedding import embed_texts

    path = _index_path(texts)
    if path.exists():
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # a damaged file: computed again and replaced
            vectors = None
        if vectors is not None and vectors.ndim == 2 and vectors.dtype.kind == "f" and vectors.shape[0] == len(texts):
            if np.isfinite(vectors).all():
                return vectors
    vectors = embed_texts(texts) if texts else np.zeros((0, 384), dtype="float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, vectors, allow_pickle=False)
    os.replace(tmp, path)
    return vectors


class KNNPredict(Predict):
    """A ``Predict`` whose demos are chosen per input: the ``k`` nearest of its ``examples``."""

    parameter_names = (*Predict.parameter_names, "examples", "k", "demo_chars", "space")
    parameter_types = {
        **Predict.parameter_types,
        "examples": list[dict[str, Any]],
        "k": int,
        "demo_chars": int,
        "space": Literal["minilm", "table"],
    }

    def _check_parameter(self, name: str, value: Any) -> str | None:
        if name == "examples":
            return self.check_examples(value, "examples")
        if name in ("k", "demo_chars") and value < 0:
            return f"must be >= 0, got {value}"
        return super()._check_parameter(name, value)

    def __init__(
        self,
        *args: Any,
        examples: list[Example] | None = None,
        k: int = 4,
        demo_chars: int = 400,
        space: str = "minilm",
        **kw: Any,
    ):
        super().__init__(*args, **kw)
        self.examples = list(examples or [])
        self.k = k
        self.demo_chars = demo_chars
        self.space = space
        self._index: tuple[list[str], Any] | None = None

    def _init_converted(self) -> None:
        """A ``Predict`` loaded as a ``KNNPredict``: no examples yet, the defaults of ``__init__``."""
        self.examples, self.k, self.demo_chars, self.space, self._index = [], 4, 400, "minilm", None

    @classmethod
    def from_step(
        cls, step: Predict, examples: list[Example], k: int, demo_chars: int, space: str = "minilm"
    ) -> KNNPredict:
        new = cls.__new__(cls)
        new.__dict__.update(step.__dict__)
        new.examples, new.k, new.demo_chars, new.space, new._index = list(examples), k, demo_chars, space, None
        return new

    def _table_scores(self, keys: list[str], query: str) -> Any:
        import numpy as np

        from compound.optimize.students.tabular import feature_names, row_matrix

        if self._index is None or self._index[0] != keys:
            features = feature_names(keys)
            x = row_matrix(keys, features)
            mean, scale = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
            self._index = (keys, ((x - mean) / scale, features, mean, scale))
        x, features, mean, scale = self._index[1]
        q = (row_matrix([query], features)[0] - mean) / scale
        return -np.linalg.norm(x - q, axis=1)

    def _key(self, values: dict[str, Any]) -> str:
        return render_inputs({k: values[k] for k in self.signature.inputs.model_fields if k in values})

    def neighbours(self, inputs: dict[str, Any]) -> list[Example]:
        import numpy as np

        from compound.optimize.students.embedding import embed_texts

        if not self.examples or self.k <= 0:
            return []
        keys = [self._key(ex) for ex in self.examples]
        if self.space == "table":
            scores = self._table_scores(keys, self._key(inputs))
        else:
            if self._index is None or self._index[0] != keys:
                self._index = (keys, embed_cached(keys))
            scores = self._index[1] @ embed_texts([self._key(inputs)])[0]
        order = np.argsort(-scores)[: self.k]
        return [self.examples[int(i)] for i in order[::-1]]  # the nearest last, next to the question

    def _cut(self, example: Example) -> Example:
        return {k: (v[: self.demo_chars] if isinstance(v, str) else v) for k, v in example.items()}

    def messages(self, inputs: dict[str, Any]) -> list[Message]:
        fixed = self.demos
        try:
            self.demos = [*fixed, *(self._cut(ex) for ex in self.neighbours(inputs))]
            return super().messages(inputs)
        finally:
            self.demos = fixed

    def __deepcopy__(self, memo: dict[int, Any]) -> KNNPredict:
        import copy

        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = v if k == "_index" else copy.deepcopy(v, memo)
        return new


class KNNFewShot(Optimizer):
    """Turn the program's one step into a ``KNNPredict`` over the trainset (no model calls at compile)."""

    def __init__(self, k: int = 4, demo_chars: int = 400) -> None:
        self.k = k
        self.demo_chars = demo_chars

    async def _compile(self, student: Module, trainset: list[Example], valset: list[Example], metric: Metric) -> None:
        step = the_step(student)
        names = set(input_fields(step)) | set(step.output_type.model_fields)
        examples = [{k: v for k, v in ex.items() if k in names} for ex in trainset]
        knn = KNNPredict.from_step(step, examples, self.k, self.demo_chars)
        knn.neighbours(examples[0])  # build (or find) the on-disk index now, inside the optimizer's run
        replace_step(student, step, knn)
        self.report["examples"] = len(examples)


def replace_step(program: Module, old: Module, new: Module) -> None:
    """Put ``new`` where ``old`` sits in ``program`` (the program itself when it is the step)."""
    if program is old:
        program.__class__ = new.__class__
        program.__dict__.update(new.__dict__)
        return
    for _, module in program.named_modules():
        for name, value in vars(module).items():
            if value is old:
                setattr(module, name, new)
                return
    raise AssertionError("step not found in its program")
