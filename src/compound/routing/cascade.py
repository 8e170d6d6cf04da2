"""Cascades and routers for classification-style steps.

A ``Cascade`` tries its stages from cheap to expensive. Each stage but the last answers with a
confidence; the answer is accepted when the confidence reaches the stage's learned threshold, otherwise
the next stage is asked. The last stage always answers. A stage certified for nothing (no threshold
passed) is skipped, so a failed calibration costs nothing per row. Thresholds are learned on a calibration sample
(``calibrate``), labelled by the last (largest) stage or by gold labels, to reach a target agreement
with a stated failure probability (see ``routing.calibrate``); they are saved with the program.

Rows the last stage has already answered (the teacher's labels while ``auto`` learned, in ``known``)
are never sent to it again: a known row that would escalate gets that answer without a call, whether
or not a response cache is on.

Stages: ``ClassifierStage`` (a local classifier, not an LLM: the students of ``optimize.students``, whose
``ProxyStage`` is this stage with an embedding student by default) and ``LLMStage`` (a typed
classification step; its confidence is the agreement of ``votes`` samples). A cascade saves each
classifier stage's state and checks it with the classifier's own ``check_state`` before anything loads.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Protocol

from compound.core.errors import InputError
from compound.program.module import Module
from compound.program.predict import Predict
from compound.routing.calibrate import Threshold, learn_threshold
from compound.store.traces import current_span
from compound.strategies.sampling import SelfConsistency


class Stage:
    name = "stage"

    async def answer(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """(label, confidence in [0, 1]) per text."""
        raise NotImplementedError


class Classifier(Protocol):
    """What a ``ClassifierStage`` runs: a local classifier that is fitted on labels and says how sure it is;
    ``check_state`` says what is wrong with a saved state (None: nothing), before anything is loaded."""

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Any: ...
    def cross_fit(self, texts: Sequence[str], labels: Sequence[str], folds: int) -> list[tuple[str, float]]: ...
    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]: ...
    def state(self) -> dict[str, Any]: ...
    def load_state(self, state: dict[str, Any]) -> None: ...
    def check_state(self, state: Any) -> str | None: ...


class ClassifierStage(Stage):
    """A stage that runs a local ``classifier`` (fitted on labels; its confidence is the classifier's)."""

    def __init__(self, name: str, classifier: Classifier) -> None:
        self.name = name
        self.classifier = classifier

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> ClassifierStage:
        self.classifier.fit(texts, labels)
        return self

    def cross_fit(self, texts: Sequence[str], labels: Sequence[str], folds: int = 4) -> list[tuple[str, float]]:
        """Out-of-fold answers for every text (each from a fold model that did not see it); the fold models
        are then what this stage deploys, so the threshold learned on these answers is about the models
        that answer later (``optimize.students.linear``). Every calibration row both trains and certifies."""
        return self.classifier.cross_fit(texts, labels, folds)

    async def answer(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        # embedding blocks for a while: a worker thread keeps the event loop free (context carried over)
        return await asyncio.to_thread(self.classifier.predict, texts)


class LLMStage(Stage):
    """A typed step whose output has one label field; confidence from ``votes`` samples (1: no signal)."""

    def __init__(self, step: Predict, field: str, name: str | None = None, votes: int = 1) -> None:
        self.name = name or str(step.model)
        self.field = field
        self.votes = votes
        self.step = step
        if votes > 1:
            step.strategy = SelfConsistency(votes)

    async def answer(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        from compound.core.concurrency import gather

        async def one(text: str) -> tuple[str, float]:
            result = await self.step.aresult(row=text)
            value = result.value
            label = str(getattr(value, self.field)) if value is not None else ""
            return label, (result.confidence if result.confidence is not None else 1.0)

        return await gather(one(t) for t in texts)


class Cascade(Module):
    parameter_names = ("thresholds", "proxies")
    parameter_types = {"thresholds": list[dict[str, Any]], "proxies": dict[str, dict[str, Any]]}
    runtime_attrs = ("answered_by",)

    def __init__(
        self,
        stages: list[Stage],
        field: str,
        thresholds: list[Threshold] | None = None,
        name: str = "Cascade",
        known: dict[str, str] | None = None,
    ) -> None:
        if len(stages) < 2:
            raise InputError("a cascade needs at least two stages")
        self.stages = stages
        self.field = field
        #: row -> the last stage's answer, already paid for (it is part of the program's fingerprint)
        self.known: dict[str, str] = dict(known or {})
        self.thresholds = thresholds or [Threshold(math.inf, 1.0, 1.0, 0, 0.0, 0.0) for _ in stages[:-1]]
        self.name = name
        self.answered_by: dict[str, int] = {s.name: 0 for s in stages}

    @property
    def step_name(self) -> str:
        return self.name

    # parameters saved as JSON: the thresholds and every proxy's weights
    def get_parameter(self, name: str) -> Any:
        if name == "thresholds":
            return [t.to_dict() for t in self.thresholds]
        return {s.name: s.classifier.state() for s in self.stages if isinstance(s, ClassifierStage)}

    def _check_parameter(self, name: str, value: Any) -> str | None:
        if name != "proxies":
            return None
        for s in self.stages:
            if isinstance(s, ClassifierStage) and s.name in value:
                problem = s.classifier.check_state(value[s.name])
                if problem:
                    return f"stage {s.name!r}: {problem}"
        return None

    def set_parameter(self, name: str, value: Any) -> None:
        if name == "thresholds":
            self.thresholds = [Threshold.from_dict(d) for d in value]
        else:
            for s in self.stages:
                if isinstance(s, ClassifierStage) and s.name in value:
                    s.classifier.load_state(value[s.name])

    async def aforward(self, row: str) -> dict[str, Any]:
        for i, stage in enumerate(self.stages):
            last = i == len(self.stages) - 1
            if not last and not math.isfinite(self.thresholds[i].value):
                continue  # a stage certified for nothing is not asked: it would only add its cost
            known = last and row in self.known
            ((label, confidence),) = [(self.known[row], 1.0)] if known else await stage.answer([row])
            if last or confidence >= self.thresholds[i].value:
                self.answered_by[stage.name] += 1
                span = current_span()
                if span is not None:
                    span.attrs.update(stage=stage.name, confidence=confidence, known=known)
                return {self.field: label, "stage": stage.name, "confidence": confidence}
        raise AssertionError("unreachable")

    async def calibrate(
        self,
        texts: Sequence[str],
        reference: Sequence[str] | None = None,
        *,
        target: float = 0.95,
        delta: float = 0.05,
        answers: dict[int, list[tuple[str, float]]] | None = None,
        start: float = 0.0,
    ) -> list[Threshold]:
        """Learn every stage's threshold on ``texts``. ``reference`` holds gold labels; without it the last
        stage labels the sample (no gold needed). ``answers`` may give a stage's answers already computed
        (out-of-fold answers of a cross-fitted proxy). ``start``: the share of the sample the first
        threshold tested accepts (``routing.calibrate.learn_threshold``)."""
        if reference is None:
            reference = [label for label, _ in await self.stages[-1].answer(texts)]
        self.thresholds = []
        for i, stage in enumerate(self.stages[:-1]):
            given = (answers or {}).get(i)
            got = given if given is not None else await stage.answer(texts)
            self.thresholds.append(
                learn_threshold(
                    [c for _, c in got],
                    [a == r for (a, _), r in zip(got, reference, strict=False)],
                    target,
                    delta,
                    start=start,
                )
            )
        return self.thresholds


class Router(Module):
    """Send each input to one model, chosen by a function of the input (a length rule, a classifier...)."""

    def __init__(self, routes: dict[str, Module], choose: Any, name: str = "Router") -> None:
        self.routes = routes
        self.choose = choose
        self.name = name

    @property
    def step_name(self) -> str:
        return self.name

    async def aforward(self, **inputs: Any) -> Any:
        route = self.choose(inputs)
        if route not in self.routes:
            raise InputError(f"router chose {route!r}; routes are {sorted(self.routes)}")
        span = current_span()
        if span is not None:
            span.attrs["route"] = route
        return await self.routes[route].acall(**inputs)
