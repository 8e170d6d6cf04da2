"""``JointSearch``: every step's instructions and demos searched together, on minibatches, under the budget.

In the spirit of DSPy's MIPROv2, for a program of any number of steps (written anew here):

1. **Demo sets.** A teacher (the student's steps on a larger model, or a program with the same steps)
   answers up to ``max_bootstrap_rows`` training rows; each run is recorded step by step
   (``optimize.runs``) and a run whose final output passes the metric is a source of demos. ``demo_sets``
   sets of at most ``max_demos`` passing runs are drawn (seeded); for each step, option 0 is the demos it
   has now and option j its records in set j (a one-step program may also draw from the labelled rows).
2. **Instruction candidates.** For each step the proposer (the teacher model, or the step's own model)
   writes ``instructions`` candidates, grounded in the step's fields, its current instructions, its
   records in passing runs and a tip varied per candidate; option 0 is the current instructions.
3. **Search.** A configuration is one choice per step of each (instructions, demos). The program as it
   is (all options 0) is scored on the whole valset first. Then each of ``trials`` trials scores one
   configuration on a fresh random minibatch of ``minibatch`` valset rows; the configuration is chosen by
   an additive surrogate: every option's mean minibatch score so far plus an exploration bonus that
   shrinks as it is tried (UCB), never a configuration tried before. Every ``full_every`` trials, and at
   the end, the configuration with the best mean minibatch score that has not been scored on the whole
   valset is; it replaces the kept program only when it beats it there.

Guarantees:
- the kept program is never worse on the valset than the program passed in (it is the first one scored
  and is replaced only by a configuration scoring higher on the whole valset);
- every call (teacher runs, proposals, scoring) happens inside ``compile`` under the caller's active
  ``compound.budget``; a budget that runs out stops the search and the best program scored on the whole
  valset so far is returned (``report["stopped"]`` says so);
- ``forecast`` states the most program runs ``compile`` can make, before it makes any, and the calls they
  make when every reply parses at its first try (a parse repair or a strategy's retry is one call more:
  on the 135M model, 2 calls of 130 in ``benchmarks/optimize_program.py``);
- what was tried is in ``report``: the candidates per step, each trial's configuration and minibatch
  score, each whole-valset score, and the choice kept per step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from compound.core.errors import OutputParseError
from compound.models.base import Backend
from compound.models.typed import acall_typed
from compound.optimize.base import (
    Example,
    Metric,
    Optimizer,
    aevaluate,
    clone,
    input_fields,
    output_fields,
    steps,
)
from compound.optimize.bootstrap import Proposal
from compound.optimize.runs import Run, bootstrap_sizes, bootstrap_split, teacher_program, traced_runs
from compound.program.module import Module
from compound.program.predict import Predict

PROPOSE = (
    "You write the instructions of one step of a language-model program.\n"
    "The step is {name}. It reads: {inputs}. It writes: {outputs}.\n"
    "Its current instructions: {current}\n\n"
    "Examples of the step answering well:\n{examples}\n\n"
    "Write new instructions for this step: general (no copying of the examples), saying how to decide. "
    "{tip} Keep the output format unchanged."
)
#: varied per candidate, so the candidates of one step differ (as MIPROv2's proposal tips do)
TIPS = (
    "Be short and direct.",
    "Name the cases that are easy to confuse and how to tell them apart.",
    "Say what to look for first in the input.",
    "Describe the task as an expert in it would.",
    "Keep it to one sentence.",
)


def _fields(model: Any) -> str:
    return ", ".join(f"{n} ({f.description})" if f.description else n for n, f in model.model_fields.items())


@dataclass
class _Stats:
    """Minibatch scores seen: per configuration, and per (dimension, option) for the surrogate."""

    by_config: dict[tuple[int, ...], list[float]] = field(default_factory=dict)
    by_option: dict[tuple[int, int], list[float]] = field(default_factory=dict)

    def add(self, config: tuple[int, ...], score: float) -> None:
        self.by_config.setdefault(config, []).append(score)
        for dim, option in enumerate(config):
            self.by_option.setdefault((dim, option), []).append(score)

    def mean(self, config: tuple[int, ...]) -> float:
        scores = self.by_config[config]
        return sum(scores) / len(scores)


class JointSearch(Optimizer):
    def __init__(
        self,
        teacher: Module | str | Backend | None = None,
        *,
        instructions: int = 3,
        demo_sets: int = 4,
        max_demos: int = 3,
        trials: int = 12,
        minibatch: int = 8,
        full_every: int = 4,
        max_bootstrap_rows: int = 16,
        proposer: str | Backend | None = None,
        explore: float = 0.3,
        seed: int = 0,
    ) -> None:
        self.teacher = teacher
        self.instructions = instructions
        self.demo_sets = demo_sets
        self.max_demos = max_demos
        self.trials = trials
        self.minibatch = minibatch
        self.full_every = max(1, full_every)
        self.max_bootstrap_rows = max_bootstrap_rows
        self.proposer = proposer
        self.explore = explore
        self.seed = seed

    # --- the forecast ------------------------------------------------------------------------------------
    def forecast(self, program: Module, trainset: list[Example], valset: list[Example] | None = None) -> dict[str, int]:
        """The most program runs ``compile`` will make, and their calls, before it makes any: the teacher's
        runs, one proposal call per instruction candidate, the program as it is on the whole valset, every
        trial's minibatch and every whole-valset check. Calls assume each step is called once a run and
        each reply parses at its first try (a loop, a parse repair, a retry or a sampling strategy adds
        calls)."""
        rows, val = bootstrap_sizes(trainset, valset, self.max_bootstrap_rows)
        n_steps = len(steps(program))
        checks = math.ceil(self.trials / self.full_every) if self.trials else 0
        scoring = val + self.trials * min(self.minibatch, val) + checks * val
        proposals = n_steps * self.instructions
        return {
            "teacher_runs": rows,
            "scoring_runs": scoring,
            "runs": rows + scoring,
            "proposal_calls": proposals,
            "step_calls": (rows + scoring) * n_steps,
            "calls": (rows + scoring) * n_steps + proposals,
        }

    # --- compile -----------------------------------------------------------------------------------------
    async def _compile(self, student: Module, trainset: list[Example], valset: list[Example], metric: Metric) -> None:
        rng = random.Random(self.seed)
        paths = [path for path, _ in steps(student)]
        rows, val = bootstrap_split(trainset, valset, self.max_bootstrap_rows, rng)
        kept = await aevaluate(student, val, metric)  # the program as it is: what every candidate must beat
        best_score = kept.score
        self.report.update(
            baseline_score=best_score, best_score=best_score, full=[{"config": None, "score": best_score}]
        )

        teacher = teacher_program(student, self.teacher)
        runs = await traced_runs(teacher, rows, metric)
        passing = [run for run, score in runs if score >= 1.0 and all(p in run for p in paths)]
        demo_options = self._demo_options(student, paths, passing, trainset, rng)
        instruction_options = await self._instruction_options(student, teacher, paths, passing, rng)
        self.report.update(
            bootstrapped=len(passing),
            candidates={
                p: {"instructions": instruction_options[p], "demo_sets": [len(d) for d in demo_options[p]]}
                for p in paths
            },
        )
        dims = [len(instruction_options[p]) for p in paths] + [len(demo_options[p]) for p in paths]

        def build(config: tuple[int, ...]) -> Module:
            program = clone(student)
            for i, (path, step) in enumerate(steps(program)):
                step.instructions = instruction_options[path][config[i]]
                step.demos = list(demo_options[path][config[len(paths) + i]])
            return program

        stats, checked, trials = _Stats(), {tuple(0 for _ in dims)}, []
        self.report["trials"] = trials
        for t in range(self.trials):
            config = self._choose(dims, stats, rng)
            if config is None:
                break  # every configuration has been tried
            batch = rng.sample(val, min(self.minibatch, len(val)))
            score = (await aevaluate(build(config), batch, metric)).score
            stats.add(config, score)
            trials.append({"config": self._describe(config, paths), "minibatch_score": score, "rows": len(batch)})
            if (t + 1) % self.full_every == 0:
                best_score = await self._check(build, stats, checked, val, metric, student, paths, best_score)
        if len(trials) % self.full_every:  # the last trials' best has not been checked yet
            await self._check(build, stats, checked, val, metric, student, paths, best_score)

    async def _check(
        self,
        build: Callable[[tuple[int, ...]], Module],
        stats: _Stats,
        checked: set[tuple[int, ...]],
        val: list[Example],
        metric: Metric,
        student: Module,
        paths: list[str],
        best_score: float,
    ) -> float:
        """Score the best-looking configuration not yet checked on the whole valset; keep it if it wins."""
        fresh = [c for c in stats.by_config if c not in checked]
        if not fresh:
            return best_score
        config = max(fresh, key=stats.mean)
        checked.add(config)
        candidate = build(config)
        score = (await aevaluate(candidate, val, metric)).score
        self.report["full"].append({"config": self._describe(config, paths), "score": score})
        if score > best_score:  # set on the student at once, so a budget stop keeps the best so far
            for (_, mine), (_, theirs) in zip(steps(student), steps(candidate), strict=True):
                mine.instructions, mine.demos = theirs.instructions, theirs.demos
            self.report.update(best_score=score, chosen=self._describe(config, paths))
            return score
        return best_score

    def _describe(self, config: tuple[int, ...], paths: list[str]) -> dict[str, dict[str, int]]:
        n = len(paths)
        return {p or "(program)": {"instructions": config[i], "demo_set": config[n + i]} for i, p in enumerate(paths)}

    def _choose(self, dims: list[int], stats: _Stats, rng: random.Random) -> tuple[int, ...] | None:
        """The next configuration: per dimension the option with the best mean minibatch score plus an
        exploration bonus (untried options first, ties at random); a configuration already tried is
        changed in one dimension at random until it is new (None when every one has been tried)."""
        total = sum(len(v) for v in stats.by_config.values())
        overall = [s for v in stats.by_config.values() for s in v]
        prior = sum(overall) / len(overall) if overall else 0.0

        def value(dim: int, option: int) -> float:
            seen = stats.by_option.get((dim, option), [])
            mean = sum(seen) / len(seen) if seen else prior
            bonus = self.explore * math.sqrt(math.log(total + 2) / len(seen)) if seen else math.inf
            return mean + bonus + rng.random() * 1e-9

        config = tuple(max(range(n), key=lambda o, d=dim: value(d, o)) for dim, n in enumerate(dims))
        tried = set(stats.by_config) | {tuple(0 for _ in dims)}
        space = math.prod(dims)
        if len(tried) >= space:
            return None
        while config in tried:
            dim = rng.randrange(len(dims))
            config = config[:dim] + (rng.randrange(dims[dim]),) + config[dim + 1 :]
        return config

    # --- candidates --------------------------------------------------------------------------------------
    def _demo_options(
        self, student: Module, paths: list[str], passing: list[Run], trainset: list[Example], rng: random.Random
    ) -> dict[str, list[list[dict[str, Any]]]]:
        """Per step: its demos now, then its records in each drawn set of passing runs."""
        source = passing
        if len(paths) == 1 and not passing:  # one step: the labelled rows are demos of it as they are
            step = steps(student)[0][1]
            names = input_fields(step) + output_fields(step)
            source = [{paths[0]: {k: ex[k] for k in names if k in ex}} for ex in trainset]
        sets = [rng.sample(source, min(self.max_demos, len(source))) for _ in range(self.demo_sets if source else 0)]
        options: dict[str, list[list[dict[str, Any]]]] = {}
        for path, step in steps(student):
            mine = [list(step.demos)]
            for chosen in sets:
                demos = [run[path] for run in chosen if path in run]
                if demos not in mine:
                    mine.append(demos)
            options[path] = mine
        return options

    async def _instruction_options(
        self, student: Module, teacher: Module, paths: list[str], passing: list[Run], rng: random.Random
    ) -> dict[str, list[str]]:
        """Per step: its instructions now, then the proposer's distinct candidates."""
        teacher_steps = dict(steps(teacher))
        options: dict[str, list[str]] = {}
        for path, step in steps(student):
            mine = [step.instructions or ""]
            model = self.proposer or (self.teacher if isinstance(self.teacher, (str, Backend)) else None)
            model = model or teacher_steps[path].model or step.model
            shown = [run[path] for run in rng.sample(passing, min(3, len(passing)))]
            for i in range(self.instructions):
                text = await self._propose(step, path, shown, TIPS[i % len(TIPS)], model, i)
                if text and text not in mine:
                    mine.append(text)
            options[path] = mine
        return options

    async def _propose(
        self, step: Predict, path: str, shown: list[dict[str, Any]], tip: str, model: Any, index: int
    ) -> str | None:
        examples = (
            "\n".join("- " + ", ".join(f"{k}: {str(v)[:200]}" for k, v in demo.items()) for demo in shown)
            or "(none yet)"
        )
        prompt = PROPOSE.format(
            name=path or step.step_name,
            inputs=_fields(step.signature.inputs),
            outputs=_fields(step.output_type),
            current=step.instructions or "(none)",
            examples=examples,
            tip=tip,
        )
        try:
            typed = await acall_typed(
                Proposal, prompt, model=model, max_tokens=200, temperature=0.7 if index else 0.0, sample_index=index
            )
        except OutputParseError:
            return None
        return typed.value.instructions.strip() or None
