"""Compare named configurations of a classification program on the user's own labelled data.

Built-in configurations: ``small`` and ``large`` (one model), ``voteN`` (self-consistency over N samples
of the small model), ``cascade`` (small model with 3 votes, then the large model) and ``auto`` (an
embedding proxy, then the large model). Cascades are calibrated on other rows of the file than the
ones evaluated (never on the rows they are scored on), and their one-time calibration cost is reported
apart from their per-row cost. Costs are what each configuration would cost on its own: cache hits
count at the cost of the call they stand for.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import create_model

from compound.core.errors import ConfigurationError, InputError
from compound.core.usage import Usage, track_usage
from compound.evaluate.report import pareto_front
from compound.models.embedded import LARGE, SMALL
from compound.program.module import Module
from compound.program.predict import Predict, Signature
from compound.routing.cascade import Cascade, LLMStage, ProxyStage
from compound.strategies.sampling import SelfConsistency
from compound.tables.io import read_table, require_columns
from compound.tables.jobs import aprocess_table
from compound.tables.operators import RowInput, classify_op, render_row

FIELD = "label"


def load_labelled(path: str | Path, input_col: str, label_col: str) -> Any:
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        try:
            df = pd.read_json(path, lines=True)
        except ValueError as e:
            raise ConfigurationError(f"{path}: not JSON Lines: {e}") from None
    else:
        df = read_table(path)
    require_columns(df, [input_col, label_col], str(path))
    df = df.dropna(subset=[input_col, label_col])
    df[label_col] = df[label_col].astype(str)
    return df.reset_index(drop=True)


def classifier(labels: list[str], model: Any, strategy: Any = None, name: str | None = None) -> Predict:
    out = create_model("Label", **{FIELD: (Literal[tuple(labels)], ...)})  # type: ignore[valid-type]
    text = f"Classify the text. Answer with one label from: {', '.join(labels)}."
    return Predict(Signature(RowInput, out, text), model=model, strategy=strategy, max_tokens=24, name=name)


def build(name: str, labels: list[str], small: Any, large: Any) -> Module:
    if name == "small":
        return classifier(labels, small, name="small")
    if name == "large":
        return classifier(labels, large, name="large")
    vote = re.fullmatch(r"vote(\d+)", name)
    if vote:
        return classifier(labels, small, SelfConsistency(int(vote.group(1))), name=name)
    if name == "cascade":
        return Cascade(
            [
                LLMStage(classifier(labels, small), FIELD, "small", votes=3),
                LLMStage(classifier(labels, large), FIELD, "large"),
            ],
            FIELD,
            name="cascade",
        )
    if name == "auto":
        return Cascade([ProxyStage("proxy"), LLMStage(classifier(labels, large), FIELD, "large")], FIELD, name="auto")
    raise ConfigurationError(
        f"unknown configuration {name!r}; built in: small, large, voteN (e.g. vote5), cascade, auto"
    )


@dataclass
class Split:
    evaluate: Any
    calibrate: Any


def split(df: Any, limit: int, calibration: int, seed: int) -> Split:
    order = list(range(len(df)))
    random.Random(seed).shuffle(order)
    if limit + calibration > len(df):
        raise ConfigurationError(
            f"the file has {len(df)} rows; --limit {limit} plus --calibration {calibration} need more"
        )
    return Split(
        df.iloc[order[:limit]].reset_index(drop=True),
        df.iloc[order[limit : limit + calibration]].reset_index(drop=True),
    )


async def calibrate(
    program: Module,
    calib: Any,
    input_col: str,
    label_col: str,
    labels: list[str],
    large: Any,
    target: float | None,
    delta: float,
) -> dict[str, Any]:
    """Fit proxies and learn thresholds on the calibration rows only. With ``target=None`` the target is
    the large model's accuracy on the same rows (so the cascade aims to match it)."""
    if not isinstance(program, Cascade):
        raise InputError(f"only a Cascade can be calibrated, not {type(program).__name__}")
    texts = [render_row(r, [input_col]) for _, r in calib.iterrows()]
    gold = calib[label_col].tolist()
    info: dict[str, Any] = {}
    if target is None:
        answers = await program.stages[-1].answer(texts)
        target = min(0.999, sum(a == g for (a, _), g in zip(answers, gold, strict=False)) / len(gold))
        info["large_accuracy_on_calibration"] = target
    # a proxy is cross-fitted: every calibration row trains it and, out of fold, sets its threshold
    oof = {
        i: stage.cross_fit(texts, gold) for i, stage in enumerate(program.stages[:-1]) if isinstance(stage, ProxyStage)
    }
    thresholds = await program.calibrate(texts, gold, target=target, delta=delta, answers=oof)
    info.update(
        target=target,
        delta=delta,
        thresholds=[t.to_dict() for t in thresholds],
        rows=len(texts),
        cross_fitted=bool(oof),
    )
    return info


async def compare(
    df: Any,
    input_col: str,
    label_col: str,
    configs: list[str],
    *,
    labels: list[str] | None = None,
    limit: int = 100,
    calibration: int = 100,
    small: Any = SMALL,
    large: Any = LARGE,
    target: float | None = None,
    delta: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    labels = labels or sorted(df[label_col].unique().tolist())
    unknown = set(df[label_col]) - set(labels)
    if unknown:
        df = df[df[label_col].isin(labels)].reset_index(drop=True)
    needs_calibration = any(c in ("cascade", "auto") for c in configs)
    parts = split(df, limit, calibration if needs_calibration else 0, seed)
    rows, details = [], {}
    for name in configs:
        program = build(name, labels, small, large)
        calib_usage = Usage()
        if isinstance(program, Cascade):
            with track_usage(f"calibrate {name}") as tracker:
                details[name] = await calibrate(
                    program, parts.calibrate, input_col, label_col, labels, large, target, delta
                )
            calib_usage = tracker.total
        op = classify_op(parts.evaluate, FIELD, labels, input_columns=[input_col], program=program)
        result = await aprocess_table(op, parts.evaluate, progress=progress)
        predicted = result.df[FIELD].astype(str).tolist()
        accuracy = sum(p == g for p, g in zip(predicted, parts.evaluate[label_col], strict=False)) / limit
        u = result.usage.total
        row = {
            "config": name,
            "accuracy": accuracy,
            "calls": u.calls,
            "tokens": u.total_tokens,
            "cpu_s": u.cpu_s,
            "joules": u.energy_j,
            "usd": u.cost_usd,
            "calibration_cpu_s": calib_usage.cpu_s,
        }
        row["answered_by"] = json.dumps(program.answered_by) if isinstance(program, Cascade) else ""
        rows.append(row)
    for row, front in zip(rows, pareto_front([(r["accuracy"], r["cpu_s"]) for r in rows]), strict=False):
        row["pareto"] = front
    return {
        "rows": rows,
        "details": details,
        "labels": labels,
        "evaluated": limit,
        "calibration_rows": calibration if needs_calibration else 0,
        "seed": seed,
    }
