"""The compound side: the same tasks through compound's ``openai:`` backend at the same servers.

Settings (compound's defaults unless said): ``OpenAIBackend(alias, base_url=<server>)``; the cache off
(``configure(cache=False)``) in a fresh, empty ``COMPOUND_HOME``; rows through the table operators
(``compound.tables.classify`` / ``compound.tables.map`` and ``process_table``, as ``compound table classify`` / ``map`` run them) at the
default concurrency (8 requests in flight; the server answers one at a time).

- classify: the short typed classification step of ``compound compare`` (greedy, 24 tokens at most).
- vote: that step with ``SelfConsistency(5)`` (first sample greedy, the rest at 0.7).
- optimize: ``KNNFewShot(k=4)`` (the trainset's labelled rows as demos, no model call at compile), and
  ``BootstrapFewShot(large, max_demos=4, candidates=1, max_bootstrap_rows=8)`` scored on 8 trainset rows
  (8 + 3 x 8 = 32 calls without repairs), under ``compound.budget(calls=32)``: the search stops at the
  cap and keeps the best so far. DSPy's ``BootstrapFewShot`` stops by itself once it has 4 demos.
- cascade: ``auto`` as ``classify(..., program="auto")`` runs it, the staged planner
  (``optimize.staged.plan_classify``: the large model labels rows of the job in rounds, the student stages
  that pay for the job's length are trained and certified, the large model answers the rest), at LOTUS's
  targets: agreement 0.8, delta 0.2.
- ``spec["scripted"]`` (``run.py --smoke --data``): scripted models instead of the servers; the large one
  answers a row's gold label, the small one the first label, a map row a fixed topic.
- map: ``compound.tables.map`` with its default step: a str column is asked for as plain text (256 tokens at most).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from meter import Meter, side_main

os.environ["COMPOUND_HOME"] = tempfile.mkdtemp(prefix="peers-compound-")

import compound  # noqa: E402
from compound import tables  # noqa: E402
from compound.evaluate.compare import classifier  # noqa: E402
from compound.models.openai_compat import OpenAIBackend  # noqa: E402
from compound.optimize.bootstrap import BootstrapFewShot  # noqa: E402
from compound.optimize.knn import KNNFewShot  # noqa: E402
from compound.optimize.staged import plan_classify  # noqa: E402
from compound.program.rows import render_row  # noqa: E402
from compound.strategies.sampling import SelfConsistency  # noqa: E402
from compound.tables.jobs import process_table  # noqa: E402

compound.configure(cache=False)
OPTIMIZER_CALLS = 32
AUTO = "auto (staged planner)"  # the cascade's configuration, as tasks.AUTO pairs it (not imported: start-up)


def backends(spec: dict[str, Any]) -> dict[str, Any]:
    if spec.get("scripted"):
        return {
            name: compound.ScriptedBackend(scripted(spec, name), model=f"peers-{name}") for name in ("small", "large")
        }
    return {name: OpenAIBackend(s["model"], base_url=s["base_url"]) for name, s in spec["servers"].items()}


def scripted(spec: dict[str, Any], name: str) -> Any:
    """A smoke run's model (module doc): replies fit for the step that asks."""
    gold = {r["text"]: r["label"] for r in spec["rows"] + spec["train"]}

    def reply(request: Any) -> str:
        if request.json_schema is None:
            return "a topic"
        row = request.messages[-1].content
        label = next((g for t, g in gold.items() if t in row), None) if name == "large" else None
        return json.dumps({"label": label or spec["labels"][0]})

    return reply


def frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame({"text": [r["text"] for r in rows]})


def label_rows(program: Any, spec: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> list[str | None]:
    df = frame(rows or spec["rows"])
    op = tables.classify(df, "label", spec["labels"], input_columns=["text"], program=program)
    out = process_table(op, df)
    return [None if v is None or v != v else str(v) for v in out.df["label"]]


def classify(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    models, out = backends(spec), []
    for name in ("small", "large"):
        predictions, cost = meter.measure(label_rows, classifier(spec["labels"], models[name], name=name), spec)
        out.append({"config": f"{name} zero-shot", "predictions": predictions, "rows_cost": cost})
    return out


def vote(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    step = classifier(spec["labels"], backends(spec)["small"], SelfConsistency(5), name="vote5")
    predictions, cost = meter.measure(label_rows, step, spec)
    return [{"config": "SelfConsistency(5)", "predictions": predictions, "rows_cost": cost}]


def budgeted(fn: Any, *args: Any) -> Any:
    with compound.budget(calls=OPTIMIZER_CALLS):  # a cap stops the search; the best so far is kept
        return fn(*args)


def optimize(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    models, labels = backends(spec), spec["labels"]
    examples = [{"row": render_row({"text": r["text"]}, ["text"]), "label": r["label"]} for r in spec["train"]]
    out = []
    boot = BootstrapFewShot(models["large"], max_demos=4, candidates=1, max_bootstrap_rows=8)
    knn = KNNFewShot(k=4)
    for name, compile_ in (
        ("BootstrapFewShot", lambda step: budgeted(boot.compile, step, examples, examples[-8:])),
        ("KNNFewShot", lambda step: knn.compile(step, examples)),
    ):
        program, one_time = meter.measure(compile_, classifier(labels, models["small"], name=name))
        predictions, cost = meter.measure(label_rows, program, spec)
        out.append({"config": name, "predictions": predictions, "one_time_cost": one_time, "rows_cost": cost})
    return out


def cascade(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    models, labels = backends(spec), spec["labels"]
    texts = [render_row({"text": r["text"]}, ["text"]) for r in spec["rows"]]

    def learn() -> tuple[Any, dict[str, Any]]:
        return compound.run_sync(plan_classify(texts, labels, model=models["large"], target=0.8, delta=0.2))

    (program, report), one_time = meter.measure(learn)
    predictions, cost = meter.measure(label_rows, program, spec)
    # the program process_table ran is a copy: count at the server
    large = cost["servers"].get("large", {}).get("calls")
    return [
        {
            "config": AUTO,
            "predictions": predictions,
            "one_time_cost": one_time,
            "rows_cost": cost,
            "rows_to_large": large,
            "stats": {k: report[k] for k in ("plan", "teacher_labelled", "rows_by_stage", "certified")},
        }
    ]


def map_(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    df = frame(spec["rows"])
    op = tables.map(df, "topic", spec["map_instruction"], input_columns=["text"], model=backends(spec)["small"])
    out, cost = meter.measure(process_table, op, df)
    return [{"config": "table map", "predictions": [str(v) for v in out.df["topic"]], "rows_cost": cost}]


if __name__ == "__main__":
    side_main({"classify": classify, "vote": vote, "optimize": optimize, "cascade": cascade, "map": map_})
