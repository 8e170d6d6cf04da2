"""A student as a cascade stage: ``ProxyStage`` is ``routing.cascade.ClassifierStage`` whose classifier
defaults to the embedding student (``optimize.students.embedding``). The cascade (``compound.routing``)
knows any local classifier through its ``Classifier`` protocol; which student runs by default is decided
here, in the layer that owns the students, so the routers import nothing from ``optimize``."""

from __future__ import annotations

from compound.optimize.students.embedding import EmbeddingClassifier
from compound.routing.cascade import Classifier, ClassifierStage


class ProxyStage(ClassifierStage):
    """A cheap first stage that is not an LLM: ``classifier`` (default: a sentence embedding + logistic
    regression, ``EmbeddingClassifier``), fitted on calibration labels."""

    def __init__(self, name: str = "proxy", classifier: Classifier | None = None) -> None:
        super().__init__(name, classifier or EmbeddingClassifier())
