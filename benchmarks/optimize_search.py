"""``compound optimize``'s search: does its forecast match what it then spent, and does the configuration it
chooses cost less than the large model alone?

    python benchmarks/optimize_search.py --smoke                      # scripted models, seconds (CI)
    python examples/datasets.py sms-spam --out data/sms_spam.jsonl
    nice -n 10 python benchmarks/optimize_search.py --data data/sms_spam.jsonl --input text --label label \\
        --target 0.8 --evaluate 60 --train 20 --strategies single --optimizers none,knn --json out.json

One run does both sides: ``forecast`` (from ``--probe`` measured rows per model) and then ``search``; the
table sets, per measure (calls, tokens, CPU seconds, dollars, joules), the forecast of the search beside
what the search spent, the probe apart (a one-time cost of the forecast itself), and their ratio. The
summary names the chosen configuration and its per-row cost beside the large model's. ``--smoke`` runs
priced scripted small, medium and large models with latency (wrong on every 4th, 10th and no row) on
synthetic rows: it checks the machinery, not a model. ``--optimizers`` may name ``proxy`` (the embedding
student in front of each model); the smoke run adds it, with a hashed bag of words for the embedding.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import parser, report  # noqa: E402

SCRIPTED = {"bench-small": (4, 1.0, 0.01), "bench-medium": (10, 3.0, 0.02), "bench-large": (0, 10.0, 0.04)}


def _scripted() -> Any:
    """Register the scripted models as the settings' small, medium and large; return synthetic rows."""
    import pandas as pd

    import compound

    def answer(every: int) -> Any:
        def reply(request: Any) -> str:
            i = int(re.findall(r"msg (\d+)", request.messages[-1].content)[-1])
            right = "spam" if i % 3 == 0 else "ham"
            wrong = {"spam": "ham", "ham": "spam"}[right]
            return json.dumps({"label": wrong if every and i % every == 0 else right})

        return reply

    for name, (every, _, latency) in SCRIPTED.items():
        compound.register_model(name, compound.ScriptedBackend(answer(every), model=name, latency_s=latency))
    compound.configure(
        small="bench-small",
        medium="bench-medium",
        large="bench-large",
        prices={n: {"input_per_mtok": p, "output_per_mtok": p} for n, (_, p, _) in SCRIPTED.items()},
    )
    rows = [{"text": f"msg {i} about things", "label": "spam" if i % 3 == 0 else "ham"} for i in range(200)]
    return pd.DataFrame(rows)


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="labelled rows (JSON Lines, CSV...), not with --smoke")
    p.add_argument("--input", default="text")
    p.add_argument("--label", default="label")
    p.add_argument("--target", type=float, default=0.8)
    p.add_argument("--delta", type=float, default=0.05)
    p.add_argument("--models", default="small,medium,large")
    p.add_argument("--strategies", default="single,vote3")
    p.add_argument("--optimizers", default="none,knn", help="comma-separated: none, knn, boot, proxy")
    p.add_argument("--evaluate", type=int, default=60)
    p.add_argument("--train", type=int, default=20)
    p.add_argument("--probe", type=int, default=3)
    p.add_argument("--poll", type=int, help="llama.cpp's polling level (0: no spinning; default llama.cpp's 50)")
    p.add_argument("--cost", default="cpu_s", choices=["cpu_s", "usd", "joules"])
    args = p.parse_args()

    import compound
    from compound.core.concurrency import run_sync
    from compound.evaluate import search as s

    if args.smoke:
        compound.configure(home=Path(tempfile.mkdtemp(prefix="optimize-bench-")))
        df, cost = _scripted(), "usd"
        from compound.optimize.students import embedding

        embedding.embed_texts = _hashed_embeddings  # no torch in the smoke run
        args.optimizers = ",".join(dict.fromkeys([*args.optimizers.split(","), "proxy"]))
    elif args.data is None:
        raise SystemExit("give --data (labelled rows) or --smoke")
    else:
        from compound.evaluate.compare import load_labelled

        df, cost = load_labelled(args.data, args.input, args.label), args.cost
    task = s.Task.split(
        df, args.input, args.label, target=args.target, delta=args.delta, evaluate=args.evaluate, train=args.train
    )
    names = [x.split(",") for x in (args.models, args.strategies, args.optimizers)]
    configs = s.configurations(*names)
    if args.poll is not None:
        compound.configure(poll=args.poll)
    # the cache is on, as in `compound optimize`: run with a fresh COMPOUND_HOME, or earlier runs' replies
    # are answered from the cache (the forecast does not count them; it counts the search's hits on its own calls)
    planned = run_sync(s.forecast(task, configs, args.probe, cost))
    found = run_sync(s.search(task, configs, planned, cost))
    probe = planned["probe_spent"]
    rows = []
    for m in s.MEASURES:
        searched, forecast = found["spent"][m], planned["search"][m]
        rows.append(
            {
                "measure": m,
                "forecast": forecast,
                "spent": searched,
                "cached forecast": planned["cached"][m],
                "cached": found["cached"][m],
                "probe": probe[m],
                "spent / forecast": searched / forecast if forecast else float("nan"),
            }
        )
    per_row = s.COSTS[cost]
    large = next((r for r in found["rows"] if r["config"] == "large"), None)
    best = found["best"] or {}
    summary = {
        "configurations": len(configs),
        "evaluated_rows": task.evaluate.shape[0],
        "target": args.target,
        "met": found["met"],
        "chosen": found["chosen"] or f"none (best {best.get('config')})",
        f"chosen {per_row}": best.get(per_row, float("nan")),
        f"large {per_row}": large[per_row] if large else float("nan"),
        "chosen accuracy": best.get("accuracy", float("nan")),
        "chosen accuracy bound": best.get("accuracy_lower", float("nan")),
        "large accuracy": large["accuracy"] if large else float("nan"),
        "chosen / large cost": best.get(per_row, float("nan")) / large[per_row] if large else float("nan"),
        "chosen one-time cpu_s": best.get("one_time_cpu_s", float("nan")),
        "proxy escalated (forecast)": planned["proxy"]["escalated"] if planned["proxy"] else float("nan"),
        "data": str(args.data) if args.data else "scripted",
        "poll": args.poll,
        "calls within 25%": abs(rows[0]["spent / forecast"] - 1) <= 0.25,
        f"{cost} within 25%": abs(rows[s.MEASURES.index(s.MEASURE[cost])]["spent / forecast"] - 1) <= 0.25,
    }
    from rich.console import Console

    from compound.evaluate.report import text_table

    keep = ("config", "accuracy", "accuracy_lower", per_row, "calls_per_row", "escalated", "meets_target", "pareto")
    Console().print(
        text_table([{k: r[k] for k in keep} for r in found["rows"]], "configurations, cheapest forecast first")
    )
    report("forecast of the search against what it spent", rows, summary, args.json)
    if args.json:
        saved = {**json.loads(args.json.read_text()), "configs": found["rows"]}
        saved.update(forecast_configs=planned["configs"], per_row=planned["per_row"], probe_rows=planned["probe_rows"])
        saved.update(proxy=planned["proxy"], argv=sys.argv[1:])
        args.json.write_text(json.dumps(saved, indent=2))


def _hashed_embeddings(texts: list[str], model_path: Any = None) -> Any:
    import numpy as np

    out = np.zeros((len(texts), 64), dtype="float32")
    for i, t in enumerate(texts):
        for w in t.split():
            out[i, sum(map(ord, w)) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


if __name__ == "__main__":
    main()
