"""Compare named configurations of a classification program on the user's own labelled data.

Built-in configurations: ``small``, ``medium`` and ``large`` (one model), ``voteN`` (self-consistency
over N samples of the small model), ``small-knn`` / ``small-boot`` (the small model with kNN or
bootstrapped demos learned on the calibration rows, see ``compound.optimize``), ``cascade`` (small model
with 3 votes, then the large model), ``auto`` (the staged planner, ``optimize.staged.plan_classify``, as
``compound table classify --auto`` runs it: the evaluated rows are its job; the large model labels some of
them, the student stages that pay for a job of that length are trained on those labels and certified,
the teacher answers the rest; no gold label is shown to it), and ``student:DIR`` (a LoRA student made by
``compound distill``; its one-time cost is its labelling, filtering and training). Apart from ``auto``,
which learns from the large model's labels of the job's rows as a real job does, nothing is learned from
the rows evaluated; the learned configurations learn on the calibration rows.

Each row reports per-row cost apart from the one-time cost (calibration, labelling, demo search, auto's
planning: the large model's labels of rows that are then those rows' answers included), and the
break-even row count: how many rows a configuration must process before its one-time cost is paid back
by its lower per-row cost than the large model's. Costs are what each configuration would cost on its
own: cache hits count at the cost of the call they stand for.

**Dominated configurations.** ``amortised_cpu_s_per_row`` is a configuration's whole CPU on this run, its
one-time cost spread over the evaluated rows: ``(one_time_cpu_s + cpu_s) / evaluated``. A configuration
is *dominated* when another one costs no more by that measure and scores no less, and is strictly better
on one (``evaluate.report.dominated_by``): its ``dominated_by`` names the best such configuration, and
``pareto`` is true for those no other dominates. The one-time cost is spread over the evaluated rows, not
over a longer job, because ``auto``'s plan (and so its one-time cost) depends on the job's length.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError, InputError
from compound.core.settings import get_settings
from compound.core.usage import Usage, track_usage
from compound.evaluate.report import mark_dominated
from compound.optimize.bootstrap import BootstrapFewShot
from compound.optimize.knn import KNNFewShot
from compound.optimize.labels import FIELD, classifier
from compound.optimize.staged import decisions, plan_classify
from compound.optimize.students.stage import ProxyStage
from compound.program.module import Module
from compound.program.rows import is_missing, render_row
from compound.routing.cascade import Cascade, LLMStage
from compound.strategies.sampling import SelfConsistency
from compound.tables.io import JSON_LINE, read_rows, require_columns
from compound.tables.jobs import aprocess_table
from compound.tables.operators import classify


def load_labelled(path: str | Path, input_col: str, label_col: str) -> Any:
    path = Path(path)
    df = read_rows(path)  # a bad JSON line is refused by its number
    if df.empty:
        raise ConfigurationError(f"{path}: no rows; the file must have {JSON_LINE}")
    require_columns(df, [input_col, label_col], str(path))
    df = df[~(df[input_col].map(is_missing) | df[label_col].map(is_missing))].copy()  # unlabelled rows
    df[label_col] = df[label_col].astype(str)
    return df.reset_index(drop=True)


def build(name: str, labels: list[str], small: Any, large: Any, texts: list[str] | None = None) -> Module:
    if name.startswith("student:"):  # a distilled student (compound distill); refuses rows it was trained on
        from compound.optimize.distill.student import student_classifier

        return student_classifier(name.partition(":")[2], texts)
    if name == "small":
        return classifier(labels, small, name="small")
    if name == "large":
        return classifier(labels, large, name="large")
    if name == "medium":
        return classifier(labels, get_settings().medium, name="medium")
    if name in ("small-knn", "small-boot"):
        return classifier(labels, small, name=name)
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
    raise ConfigurationError(
        f"unknown configuration {name!r}; built in: {', '.join(BUILT_IN)}, voteN (e.g. vote5), student:DIR"
    )


BUILT_IN = ("small", "medium", "large", "small-knn", "small-boot", "cascade", "auto")
LEARNED = ("small-knn", "small-boot", "cascade")  # configurations that learn on the calibration rows


async def learn(
    name: str, calib: Any, input_col: str, label_col: str, labels: list[str], small: Any, large: Any
) -> tuple[Module, dict[str, Any]]:
    """The one-time step of a learned configuration, on the calibration rows only."""
    texts = [render_row(r, [input_col]) for _, r in calib.iterrows()]
    gold = [str(g) for g in calib[label_col]]
    examples = [{"row": t, FIELD: g} for t, g in zip(texts, gold, strict=True)]
    step = classifier(labels, small, name=name)
    if name == "small-knn":
        optimizer: Any = KNNFewShot(k=4)
        program = await optimizer.acompile(step, examples)
    else:
        optimizer = BootstrapFewShot(large, max_demos=4, candidates=4, max_bootstrap_rows=16)
        cut = len(examples) // 2
        program = await optimizer.acompile(step, examples[:cut], examples[cut:][:40])
    return program, {k: v for k, v in optimizer.report.items() if k != "usage"}


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


async def score(
    program: Module, df: Any, input_col: str, label_col: str, labels: list[str], progress: bool = False
) -> tuple[float, Usage]:
    """Run a classification program over ``df`` as a table job: its accuracy against ``label_col``, and
    what it used (cache hits at the cost of the calls they stand for)."""
    result = await aprocess_table(
        classify(df, FIELD, labels, input_columns=[input_col], program=program), df, progress=progress
    )
    predicted = result.df[FIELD].astype(str).tolist()
    accuracy = sum(p == g for p, g in zip(predicted, df[label_col].astype(str), strict=False)) / len(df)
    return accuracy, result.usage.total


def add_break_even(rows: list[dict[str, Any]], reference: str = "large") -> None:
    """Rows after which a configuration's one-time cost is paid back by its per-row saving over ``reference``
    (0 with no one-time cost; None when it saves nothing per row, or the reference was not run)."""
    ref = next((r for r in rows if r["config"] == reference), None)
    for r in rows:
        saving = None if ref is None else ref["cpu_s_per_row"] - r["cpu_s_per_row"]
        if not r["one_time_cpu_s"]:
            r["break_even_rows"] = 0
        elif saving is None or saving <= 0:
            r["break_even_rows"] = None
        else:
            r["break_even_rows"] = math.ceil(r["one_time_cpu_s"] / saving)


async def compare(
    df: Any,
    input_col: str,
    label_col: str,
    configs: list[str],
    *,
    labels: list[str] | None = None,
    limit: int = 100,
    calibration: int = 100,
    small: Any = None,
    large: Any = None,
    target: float | None = None,
    delta: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    small, large = small or get_settings().small, large or get_settings().large
    labels = labels or sorted(df[label_col].unique().tolist())
    unknown = set(df[label_col]) - set(labels)
    if unknown:
        df = df[df[label_col].isin(labels)].reset_index(drop=True)
    needs_calibration = any(c in LEARNED for c in configs)
    parts = split(df, limit, calibration if needs_calibration else 0, seed)
    rows, details = [], {}
    reports: dict[str, Any] = {}
    evaluated = [render_row(r, [input_col]) for _, r in parts.evaluate.iterrows()]
    for name in configs:
        program = None if name == "auto" else build(name, labels, small, large, evaluated)
        calib_usage = Usage()
        if name.startswith("student:"):  # its one-time cost: teacher labelling, filtering and training
            from compound.optimize.distill.student import student_one_time_cpu_s

            calib_usage = Usage(cpu_s=student_one_time_cpu_s(name.partition(":")[2]))
        if name == "auto":  # the planner, on the evaluated rows as its job (module doc)
            with track_usage("plan auto") as tracker:
                program, reports[name] = await plan_classify(
                    evaluated, labels, field=FIELD, model=large, target=target, delta=delta, seed=seed
                )
            details[name] = decisions(reports[name])
            calib_usage = tracker.total
        elif name in LEARNED:
            with track_usage(f"learn {name}") as tracker:
                if isinstance(program, Cascade):
                    details[name] = await calibrate(
                        program, parts.calibrate, input_col, label_col, labels, large, target, delta
                    )
                else:
                    program, details[name] = await learn(
                        name, parts.calibrate, input_col, label_col, labels, small, large
                    )
            calib_usage = tracker.total
        assert program is not None  # "auto" is planned above
        accuracy, u = await score(program, parts.evaluate, input_col, label_col, labels, progress)
        row = {
            "config": name,
            "accuracy": accuracy,
            "calls": u.calls,
            "tokens": u.total_tokens,
            "cpu_s": u.cpu_s,
            "joules": u.energy_j,
            "usd": u.cost_usd,
            "cpu_s_per_row": u.cpu_s / limit,
            "one_time_cpu_s": calib_usage.cpu_s,
            "amortised_cpu_s_per_row": (u.cpu_s + calib_usage.cpu_s) / limit,
        }
        answered_by = (
            program.answered_by if isinstance(program, Cascade) else reports.get(name, {}).get("rows_by_stage")
        )
        row["answered_by"] = json.dumps(answered_by) if answered_by else ""
        rows.append(row)
    add_break_even(rows)
    mark_dominated(rows, "accuracy", "amortised_cpu_s_per_row")
    return {
        "rows": rows,
        "details": details,
        "labels": labels,
        "evaluated": limit,
        "calibration_rows": calibration if needs_calibration else 0,
        "seed": seed,
        "cost": "amortised_cpu_s_per_row",
        **({"auto_report": reports["auto"]} if "auto" in reports else {}),
    }
