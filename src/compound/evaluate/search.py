"""The cheapest configuration of a classification job that meets a quality target, with a forecast first.

A configuration is a model (a role of the settings, ``small``/``medium``/``large``, a model id, or a
distilled ``student:DIR``), a strategy (``single``, ``voteN`` for self-consistency over N samples,
``repair``) and an optimizer (``none``, ``knn`` for ``KNNFewShot``, ``boot`` for ``BootstrapFewShot`` with
the large model as teacher, ``proxy`` for a local student in front of the model). ``search`` tries each
on the same held-out rows and keeps the cheapest whose accuracy *with confidence* meets the target: the
Clopper-Pearson lower bound on its accuracy (``routing.calibrate.lower_bound``, failure probability
``delta``) must be at least ``target``.

Guarantees:

- ``forecast`` runs before anything else is spent, and builds every figure from measured rows, never
  from a prior. For each model and strategy (a "shape"), and again with demos in the prompt where an
  optimizer adds them, it scores one warm-up row, which pays what the search pays once per configuration
  (loading the model, reading the prompt's fixed part that later rows reuse), then ``probe`` measured
  rows, as the search will run them (a voteN's
  N calls, a repair's retries, as they happen; demos from a ``KNNFewShot`` probe, whose per-row
  embedding is counted as local CPU and whose index of the training rows is built once, here, and kept on
  disk for the search). The rows are spare rows, neither learned from nor evaluated on, where the data has
  enough, else evaluation rows; each shape reads rows of its own while they last, since a local model
  keeps the prompts it read. Each configuration's search
  (optimizer compile plus evaluation) and job (``job_rows`` rows) is its shape's measured per-row usage
  (calls, tokens, CPU seconds, dollars, joules) times its rows. ``BootstrapFewShot``'s compile is
  forecast from ``BootstrapFewShot.forecast``'s runs (the teacher's on the large model with the same
  strategy, then its candidate demo sets); which demo set it keeps is known only after it compiled, so its
  evaluation and job are forecast halfway between the shape without demos and the one with them.
- ``proxy`` is a ``routing.cascade.Cascade``: the embedding student (``optimize.students.stage.ProxyStage``,
  the one ``auto`` uses) answers the rows it is sure of, the configuration's model and strategy the rest.
  The student learns on the training rows only, cross-fitted (``ClassifierStage.cross_fit``: every
  training row is answered by fold models that did not see it, and those fold models are what is
  deployed). Its threshold is learned on those out-of-fold answers against the rows' labels with the
  fixed-sequence Clopper-Pearson test (``routing.calibrate.learn_threshold``) at the search's ``target``
  and ``delta``, the first threshold tested accepting a quarter of the rows (``optimize.auto.START``):
  with probability at least ``1 - delta`` the answers it keeps are right at ``target`` or better, so the
  cascade meets the target where its model does on the rows it escalates. Like every configuration it is
  judged only by its own accuracy bound on the evaluation rows. A student certified for nothing is never
  asked (the cascade's rule), and the configuration then costs what its model does. The forecast fits the
  student once on the training rows (measured: embedding and fitting, local CPU), which gives the share
  of rows it escalates (the training rows below its threshold, out of fold), and measures its per-row
  answer (one embedding and the heads) on ``probe`` rows; the configuration's per-row cost is that answer
  plus the escalated share times its model's measured shape, its search that times the evaluation rows
  plus the fit, which the search does again for each ``proxy`` configuration.
- The cache: the probe runs with the response cache off (it reads and writes nothing), so the search
  computes its rows again. With the cache on, the forecast counts the hits the search will make on its
  own calls (``_forecast_cache_hits``: a single call, a vote's greedy candidate and a repair's first
  attempt on the same prompt are one request, computed by the first such configuration to run; a
  ``proxy`` configuration sends its model the same requests for the rows it escalates, which are the same
  rows for every ``proxy`` configuration, as each fits the same student on the same rows) and states them
  under ``cached``; replies cached by an earlier run are not forecast. The search's ``spent`` is what
  it computed, ``cached`` what its cache hits stood for, ``probe_spent`` the forecast's own measuring.
- The learned configurations learn on the training rows only; every configuration is scored on the
  evaluation rows, which nothing learns from.
- The caller's ``compound.budget`` caps the search: when it runs out, the search stops, and the result
  says so and holds what was scored until then.
- The result always names the best configuration found and its cost per row (a tie goes to the higher
  bound, then to the smaller one-time cost), and says whether it meets the target; ``pareto`` marks the
  configurations no other beats on both accuracy and cost per row, and ``dominated_by`` names, for every
  other one, the best configuration that does (``evaluate.report.mark_dominated``, the same test
  ``compound compare`` uses).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from compound.core.errors import BudgetExceededError, ConfigurationError
from compound.core.settings import configured, get_settings
from compound.core.usage import track_usage
from compound.evaluate.compare import score
from compound.evaluate.report import mark_dominated
from compound.optimize.auto import START
from compound.optimize.bootstrap import BootstrapFewShot
from compound.optimize.knn import KNNFewShot
from compound.optimize.labels import FIELD, classifier
from compound.optimize.students.stage import ProxyStage
from compound.program.module import Module
from compound.program.rows import render_row
from compound.routing.calibrate import Threshold, lower_bound
from compound.routing.cascade import Cascade, LLMStage
from compound.strategies.repair import Repair
from compound.strategies.sampling import SelfConsistency
from compound.tables.jobs import JobStopped

ROLES = ("small", "medium", "large")
STRATEGIES = ("single", "repair", "voteN")
OPTIMIZERS = ("none", "knn", "boot", "proxy")
#: the usage fields a forecast states, as ``Usage.to_dict`` names them
MEASURES = ("calls", "total_tokens", "cpu_s", "cost_usd", "energy_j")
#: what "cheapest" can mean: a per-row column of the result
COSTS = {"cpu_s": "cpu_s_per_row", "usd": "usd_per_row", "joules": "joules_per_row"}
#: the usage field each cost sums
MEASURE = {"cpu_s": "cpu_s", "usd": "cost_usd", "joules": "energy_j"}


@dataclass(frozen=True)
class Config:
    """One configuration of the job (see the module's docstring)."""

    model: str
    strategy: str = "single"
    optimizer: str = "none"

    @property
    def name(self) -> str:
        return "+".join(p for p in (self.model, self.strategy, self.optimizer) if p not in ("single", "none"))

    @property
    def calls_per_row(self) -> int:
        vote = re.fullmatch(r"vote(\d+)", self.strategy)
        return int(vote.group(1)) if vote else 1


def configurations(models: list[str], strategies: list[str], optimizers: list[str]) -> list[Config]:
    """Every combination, checked; a distilled student is tried as it is (no strategy, no optimizer)."""
    for s in strategies:
        if s not in ("single", "repair") and not re.fullmatch(r"vote([2-9]|[1-9]\d+)", s):
            raise ConfigurationError(f"unknown strategy {s!r}; use single, repair or voteN (N >= 2, e.g. vote3)")
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ConfigurationError(f"unknown optimizer {o!r}; use one of {', '.join(OPTIMIZERS)}")
    if not models or not strategies or not optimizers:
        raise ConfigurationError("the search needs at least one model, one strategy and one optimizer")
    out = []
    for m in models:
        if m.startswith("student:"):
            out.append(Config(m))
        else:
            out += [Config(m, s, o) for s in strategies for o in optimizers]
    return out


@dataclass(frozen=True)
class Task:
    """The labelled rows split into training (what optimizers learn from) and evaluation rows."""

    train: Any
    evaluate: Any
    input_col: str
    label_col: str
    labels: list[str]
    target: float
    delta: float
    job_rows: int
    #: up to 128 rows neither learned from nor evaluated on, where the forecast measures (may be empty)
    spare: Any = None

    @classmethod
    def split(
        cls,
        df: Any,
        input_col: str,
        label_col: str,
        *,
        target: float,
        delta: float = 0.05,
        evaluate: int = 100,
        train: int = 40,
        job_rows: int | None = None,
        labels: list[str] | None = None,
        seed: int = 0,
    ) -> Task:
        if not 0 < target < 1:
            raise ConfigurationError(f"the target accuracy must be between 0 and 1, got {target}")
        if not 0 < delta < 1:
            raise ConfigurationError(f"delta must be between 0 and 1, got {delta}")
        if evaluate + train > len(df):
            raise ConfigurationError(
                f"the data has {len(df)} labelled rows; {evaluate} to evaluate plus {train} to learn from need more"
            )
        best = lower_bound(evaluate, evaluate, delta)
        if best < target:
            raise ConfigurationError(
                f"even a configuration right on all {evaluate} evaluation rows has an accuracy bound of {best:.3f} "
                f"at delta {delta}, below the target {target}: evaluate on more rows or lower the target"
            )
        order = list(range(len(df)))
        random.Random(seed).shuffle(order)
        return cls(
            df.iloc[order[evaluate : evaluate + train]].reset_index(drop=True),
            df.iloc[order[:evaluate]].reset_index(drop=True),
            input_col,
            label_col,
            labels or sorted(df[label_col].astype(str).unique().tolist()),
            target,
            delta,
            job_rows if job_rows is not None else len(df),
            df.iloc[order[evaluate + train : evaluate + train + 128]].reset_index(drop=True),
        )

    def examples(self) -> list[dict[str, Any]]:
        return [
            {"row": render_row(r, [self.input_col]), FIELD: str(r[self.label_col])} for _, r in self.train.iterrows()
        ]


def _model(name: str) -> str:
    return getattr(get_settings(), name) if name in ROLES else name


def build(config: Config, task: Task) -> Module:
    """The configuration's program before any optimizer runs (a student refuses the rows it was taught on);
    a ``proxy`` configuration's is its cascade with the student not yet fitted (so never asked). A saved
    program loads into it: ``build(config, task).load_state(state)``."""
    labels = task.labels
    if config.model.startswith("student:"):
        from compound.optimize.distill.student import student_classifier

        texts = [render_row(r, [task.input_col]) for _, r in task.evaluate.iterrows()]
        return student_classifier(config.model.partition(":")[2], texts)
    strategy: Any = None
    if config.strategy == "repair":
        strategy = Repair(attempts=2)
    elif config.calls_per_row > 1:
        strategy = SelfConsistency(config.calls_per_row)
    if config.optimizer != "proxy":
        return classifier(labels, _model(config.model), strategy, name=config.name)
    step = classifier(labels, _model(config.model), strategy, name=config.model)
    return Cascade([ProxyStage("proxy"), LLMStage(step, FIELD, config.model)], FIELD, name=config.name)


def _bootstrap() -> BootstrapFewShot:
    return BootstrapFewShot(get_settings().large, max_demos=4, candidates=2, max_bootstrap_rows=8)


def _boot_split(examples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    cut = len(examples) // 2
    return examples[:cut], examples[cut:]


async def _learn(config: Config, program: Module, task: Task) -> Module:
    if isinstance(program, Cascade):  # proxy: the student's fold models and threshold (module docstring)
        examples = task.examples()
        texts, gold = [e["row"] for e in examples], [e[FIELD] for e in examples]
        student = program.stages[0]
        assert isinstance(student, ProxyStage)
        oof = {0: student.cross_fit(texts, gold)}
        await program.calibrate(texts, gold, target=task.target, delta=task.delta, answers=oof, start=START)
        return program
    if config.optimizer == "knn":
        return await KNNFewShot(k=4).acompile(program, task.examples())
    if config.optimizer == "boot":
        return await _bootstrap().acompile(program, *_boot_split(task.examples()))
    return program


def _scaled(per_row: dict[str, float], rows: float) -> dict[str, float]:
    return {k: per_row[k] * rows for k in MEASURES}


Shape = tuple[str, str, bool]


def _shape_name(shape: Shape) -> str:
    model, strategy, demos = shape
    return "+".join(p for p in (model, strategy, "demos" if demos else "") if p not in ("single", ""))


def _shapes(c: Config) -> list[Shape]:
    """What a configuration's cost is forecast from: its model and strategy without demos, and with demos
    where an optimizer adds them; ``boot``'s teacher runs the same program on the large model; ``proxy``'s
    model answers as without it (on the rows the student escalates)."""
    if c.optimizer in ("none", "proxy"):
        return [(c.model, c.strategy, False)]
    if c.optimizer == "knn":
        return [(c.model, c.strategy, True)]
    return [(c.model, c.strategy, False), (c.model, c.strategy, True), ("large", c.strategy, False)]


def _sharing(configs: list[Config]) -> dict[tuple[str, str], list[int]]:
    """Configurations (by index) whose every row's first call is the same request: one model, no
    optimizer (or ``proxy``, on the rows it escalates) or ``knn``'s demos, any strategy (a single call, a
    vote's greedy candidate and a repair's first attempt are one request)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, c in enumerate(configs):
        if c.optimizer in ("none", "knn", "proxy") and not c.model.startswith("student:"):
            groups.setdefault((c.model, "knn" if c.optimizer == "knn" else "none"), []).append(i)
    return {k: v for k, v in groups.items() if len(v) > 1}


def _first_call_shapes(configs: list[Config]) -> set[Shape]:
    return {(model, "single", optimizer == "knn") for model, optimizer in _sharing(configs)}


def _forecast_cache_hits(
    configs: list[Config],
    rows_out: list[dict[str, Any]],
    measured: dict[str, dict[str, float]],
    rows: int,
    escalated: float,
    measure: str,
) -> None:
    """With the response cache on, only the first configuration of a ``_sharing`` group to run computes each
    row's first call; the others read it from the cache: their forecast drops it, under ``cached``. A
    ``proxy`` configuration calls its model on the ``escalated`` share of the rows only, the same rows for
    every ``proxy`` configuration: it finds in the cache the share an earlier member of its group computed,
    and computes for a later one only the share it had not; where the earlier member has its strategy
    (``large`` before ``large+proxy``), every call of those rows is cached, not only the first. The search
    runs them cheapest forecast first, by its cost ``measure``.

    A vote's cached greedy candidate saves its calls, tokens and dollars, but of its CPU (and joules) only
    what one more sample costs, ``(vote - single) / (N - 1)`` as measured: its other samples still read the
    prompt, which the greedy call would have read for them."""
    for (model, optimizer), members in _sharing(configs).items():
        single = measured[_shape_name((model, "single", optimizer == "knn"))]
        first = 0.0  # the share of rows whose first call an earlier member computed
        whole: dict[str, float] = {}  # by strategy: the share of rows whose every call an earlier member computed
        for i in sorted(members, key=lambda i: rows_out[i]["search"][measure]):
            c, out = configs[i], rows_out[i]
            share = escalated if c.optimizer == "proxy" else 1.0
            every = min(share, whole.get(c.strategy, 0.0))
            only_first = min(share, first) - every
            first, whole[c.strategy] = max(share, first), max(share, whole.get(c.strategy, 0.0))
            if every + only_first <= 0:
                continue
            saved = dict(single)
            if c.calls_per_row > 1:
                vote = measured[_shape_name(_shapes(c)[0])]
                for k in ("cpu_s", "energy_j"):
                    saved[k] = min(max((vote[k] - single[k]) / (c.calls_per_row - 1), 0.0), single[k])
            shape = measured[_shape_name(_shapes(c)[0])]
            out["cached"] = {k: (every * shape[k] + only_first * saved[k]) * rows for k in MEASURES}
            out["search"] = {k: out["search"][k] - out["cached"][k] for k in MEASURES}


async def forecast(task: Task, configs: list[Config], probe: int = 3, cost: str = "cpu_s") -> dict[str, Any]:
    """Measure ``probe`` rows of each model and strategy (with demos too where an optimizer adds them),
    with the response cache off, then forecast the search and the job (module docstring); ``cost`` is the
    search's (``COSTS``), which orders its configurations and so which of them computes a shared call."""
    if cost not in COSTS:
        raise ConfigurationError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")
    if any(c.optimizer == "boot" for c in configs) and len(task.train) < 2:
        raise ConfigurationError("the boot optimizer needs at least 2 training rows (--train)")
    if any(c.optimizer == "knn" for c in configs) and len(task.train) < 1:
        raise ConfigurationError("the knn optimizer needs training rows (--train); or search --optimizers none")
    if any(c.optimizer == "proxy" for c in configs) and task.train[task.label_col].astype(str).nunique() < 2:
        raise ConfigurationError(
            "the proxy optimizer's student learns from the training rows, which need at least two labels: "
            "raise --train, or search without proxy"
        )
    # the rows it measures on: spare rows where there are enough, so that no row of the search was read before
    pool = task.spare if task.spare is not None and len(task.spare) > probe else task.evaluate
    if probe < 1 or probe + 1 > len(pool):
        raise ConfigurationError(f"--probe must be between 1 and {len(pool) - 1} (the evaluation rows less one)")
    cache = get_settings().cache
    shapes = sorted({s for c in configs for s in _shapes(c)} | (_first_call_shapes(configs) if cache else set()))
    n = len(pool)
    measured: dict[str, dict[str, float]] = {}
    with configured(cache=False), track_usage("forecast") as spent:
        for k, shape in enumerate(shapes):
            # each shape reads rows of its own (while there are enough): a model keeps the prompts it read,
            # so a row another shape of it read would be cheaper now than in the search
            start = (k * (probe + 1)) % (n - probe)
            warm, rows = pool.iloc[start : start + 1], pool.iloc[start + 1 : start + probe + 1]
            model, strategy, demos = shape
            config = Config(model, strategy, "knn" if demos else "none")
            program = await _learn(config, build(config, task), task)  # the knn index: built once, kept on disk
            # the warm-up row pays what the search pays once per configuration: loading the model (its first
            # shape) and reading the prompt's fixed part (instructions, schema), which later rows reuse
            await score(program, warm, task.input_col, task.label_col, task.labels)
            with track_usage(_shape_name(shape)) as one:
                await score(program, rows, task.input_col, task.label_col, task.labels)
            measured[_shape_name(shape)] = _scaled(one.total.to_dict(), 1 / len(rows))
        proxy = next((c for c in configs if c.optimizer == "proxy"), None)
        student = await _measure_student(proxy, task, pool, probe, measured) if proxy else None
    escalated = student["escalated"] if student else 1.0
    rows_out = []
    for c in configs:
        bare = measured.get(_shape_name((c.model, c.strategy, False)), {})
        demos = measured.get(_shape_name((c.model, c.strategy, True)), {})
        if c.optimizer == "proxy":  # the student on every row, the model on the rows it escalates
            per_row = {k: measured["student"][k] + escalated * bare.get(k, 0) for k in MEASURES}
        else:
            per_row = {
                "none": bare,
                "knn": demos,
                "boot": {k: (bare.get(k, 0) + demos.get(k, 0)) / 2 for k in MEASURES},
            }[c.optimizer]
        evaluation = _scaled(per_row, len(task.evaluate))
        learning = dict.fromkeys(MEASURES, 0.0)
        if student and c.optimizer == "proxy":  # the search fits the student again for each configuration
            learning = {k: student["fit"][k] for k in MEASURES}
        if c.optimizer == "boot":  # the teacher's runs, then one demo set without demos and the rest with
            train, val = _boot_split(task.examples())
            f = _bootstrap().forecast(build(c, task), train, val)
            parts = [
                _scaled(measured[_shape_name(("large", c.strategy, False))], f["teacher_runs"]),
                _scaled(bare, len(val)),
                _scaled(demos, f["scoring_runs"] - len(val)),
            ]
            learning = {k: sum(p[k] for p in parts) for k in MEASURES}
        search = {k: evaluation[k] + learning[k] for k in MEASURES}
        job = _scaled(per_row, task.job_rows)
        rows_out.append({"config": c.name, "search": search, "job": job})
    if cache:
        _forecast_cache_hits(configs, rows_out, measured, len(task.evaluate), escalated, MEASURE[cost])
    total = {k: sum(r["search"][k] for r in rows_out) for k in MEASURES}
    return {
        "probe_rows": probe,
        "cached": {k: sum(r.get("cached", {}).get(k, 0.0) for r in rows_out) for k in MEASURES},
        "per_row": measured,
        "configs": rows_out,
        "search": total,
        "probe_spent": spent.total.to_dict(),
        "job_rows": task.job_rows,
        "proxy": student,
    }


async def _measure_student(
    config: Config, task: Task, pool: Any, probe: int, measured: dict[str, Any]
) -> dict[str, Any]:
    """Fit ``proxy``'s student on the training rows as the search will, measuring the fit, and, where it is
    certified for any rows, its answer to one row at a time (as the cascade asks it) on ``probe`` rows after
    a warm-up row (``measured["student"]``); say the share of rows it escalates (module docstring). A
    warm-up fit on one training row of each label first pays what the process pays once (loading the
    embedder, importing scikit-learn), which the search's fits do not pay again."""
    first = {e[FIELD]: e["row"] for e in reversed(task.examples())}
    ProxyStage("warm-up").fit(list(first.values()), list(first))
    with track_usage("proxy: fit") as fit:
        cascade = await _learn(config, build(config, task), task)
    assert isinstance(cascade, Cascade)
    threshold: Threshold = cascade.thresholds[0]
    certified = math.isfinite(threshold.value)
    measured["student"] = dict.fromkeys(MEASURES, 0.0)  # a student certified for nothing is never asked
    if certified:
        stage = cascade.stages[0]
        texts = [render_row(r, [task.input_col]) for _, r in pool.iloc[: probe + 1].iterrows()]
        await stage.answer(texts[:1])
        with track_usage("proxy: student") as one:
            for text in texts[1:]:
                await stage.answer([text])
        measured["student"] = _scaled(one.total.to_dict(), 1 / probe)
    return {
        "threshold": threshold.to_dict(),
        "escalated": 1 - threshold.accepted / len(task.train) if certified else 1.0,
        "fit": fit.total.to_dict(),
        "train_rows": len(task.train),
    }


async def search(task: Task, configs: list[Config], planned: dict[str, Any], cost: str = "cpu_s") -> dict[str, Any]:
    """Score every configuration (cheapest forecast first) and choose the cheapest by ``cost`` (``COSTS``)
    that meets the target; ``planned`` is ``forecast``'s result."""
    if cost not in COSTS:
        raise ConfigurationError(f"unknown cost {cost!r}; use one of {', '.join(COSTS)}")
    key = COSTS[cost]
    measure = MEASURE[cost]
    # the forecast without cache hits: the configuration the forecast let compute a shared first call runs first
    forecast_of = {
        r["config"]: r["search"][measure] + r.get("cached", {}).get(measure, 0.0) for r in planned["configs"]
    }
    order = sorted(configs, key=lambda c: forecast_of[c.name])
    n = len(task.evaluate)
    rows: list[dict[str, Any]] = []
    programs: dict[str, Module] = {}
    stopped = None
    with track_usage("search") as spent:
        for c in order:
            try:
                with track_usage(c.name) as learning:
                    program = await _learn(c, build(c, task), task)
                accuracy, used = await score(program, task.evaluate, task.input_col, task.label_col, task.labels)
            except (BudgetExceededError, JobStopped) as e:
                cause = e if isinstance(e, BudgetExceededError) else e.__cause__
                if not isinstance(cause, BudgetExceededError):
                    raise
                stopped = f"{cause} (after {len(rows)} of {len(order)} configurations)"
                break
            correct = round(accuracy * n)
            programs[c.name] = program
            escalated = None  # proxy: the share of the rows it answered this run that its model answered
            if isinstance(program, Cascade) and sum(program.answered_by.values()):
                escalated = program.answered_by[program.stages[-1].name] / sum(program.answered_by.values())
            rows.append(
                {
                    "config": c.name,
                    "model": _model(c.model),
                    "strategy": c.strategy,
                    "optimizer": c.optimizer,
                    "accuracy": accuracy,
                    "accuracy_lower": lower_bound(correct, n, task.delta),
                    "cpu_s_per_row": used.cpu_s / n,
                    "usd_per_row": used.cost_usd / n,
                    "joules_per_row": used.energy_j / n,
                    "calls_per_row": used.calls / n,
                    "one_time_cpu_s": learning.total.cpu_s,
                    "escalated": escalated,
                }
            )
    mark_dominated(rows, "accuracy", key)
    for row in rows:
        row["meets_target"] = row["accuracy_lower"] >= task.target
    meeting = [r for r in rows if r["meets_target"]]
    if meeting:
        # at equal cost per row and bound, the configuration with less to learn (a proxy certified for no row)
        best = min(meeting, key=lambda r: (r[key], -r["accuracy_lower"], r["one_time_cpu_s"]))
    else:
        best = max(rows, key=lambda r: (r["accuracy_lower"], -r[key]), default=None)
    return {
        "target": task.target,
        "delta": task.delta,
        "cost": cost,
        "evaluated_rows": n,
        "train_rows": len(task.train),
        "rows": rows,
        "chosen": best["config"] if best and meeting else None,
        "best": best,
        "met": bool(meeting),
        "stopped": stopped,
        "spent": spent.physical.to_dict(),
        "cached": spent.cached.to_dict(),
        "probe_spent": planned["probe_spent"],
        "proxy": planned.get("proxy"),  # the student's threshold, fit and forecast share of rows escalated
        "program": programs.get(best["config"]) if best else None,
    }


__all__ = ["COSTS", "MEASURES", "Config", "Task", "build", "configurations", "forecast", "search"]
