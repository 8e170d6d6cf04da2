"""The sql_fix example's parts on a schema made here: corruptions break queries, the program repairs."""

import json
import random
import sys
from pathlib import Path

from compound import ScriptedBackend
from compound.tools.sql import SQLDatabase

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import sql_fix  # noqa: E402

SCHEMA = {
    "db_id": "shop",
    "table_names_original": ["customer", "orders", "supplier"],
    "column_names_original": [
        [-1, "*"],
        [0, "id"],
        [0, "name"],
        [1, "order_id"],
        [1, "customer_id"],
        [1, "total"],
        [2, "city"],
    ],
    "column_types": ["text", "number", "text", "number", "number", "number", "text"],
}
GOLD = "SELECT T1.name, count(*) FROM customer AS T1 JOIN orders AS T2 ON T1.id = T2.customer_id GROUP BY T1.name"


def database(tmp_path):
    return SQLDatabase(f"sqlite:///{sql_fix.build_database(SCHEMA, tmp_path / 'shop.sqlite')}")


def test_every_corruption_breaks_the_gold_query(tmp_path):
    db = database(tmp_path)
    assert sql_fix.run_sql(db, GOLD)[1] is None
    for corrupt in sql_fix.CORRUPTIONS:
        broken = corrupt(GOLD, SCHEMA, random.Random(1))
        assert broken and broken != GOLD, corrupt.__name__
        assert sql_fix.run_sql(db, broken)[1] is not None, (corrupt.__name__, broken)


def test_the_program_repairs_with_the_database_error(tmp_path):
    db = database(tmp_path)
    broken = sql_fix.misspell_table(GOLD, SCHEMA, random.Random(0))
    replies = iter(
        [
            json.dumps({"bug": "typo", "fixed_sql": broken.replace("SELECT", "SELECT ")}),  # still broken
            json.dumps({"bug": "misspelled table", "fixed_sql": GOLD}),
        ]
    )
    model = ScriptedBackend(lambda r: next(replies))
    result = sql_fix.SQLFix(db, model)(query=broken, error=sql_fix.run_sql(db, broken)[1])
    assert [c.passed for c in result.candidates] == [False, True]
    assert "fails on the database" in model.requests[1].messages[-1].content
    assert result.value.fixed_sql == GOLD
    rows = sql_fix.run_sql(db, result.value.fixed_sql)[0]
    assert sql_fix.same_rows(rows, sql_fix.run_sql(db, GOLD)[0])


def test_the_run_check_needs_only_the_inputs_schema(tmp_path):
    """The step's checks read the schema from its inputs (so Distill's filter can use them on any case):
    a fix naming a column the schema lacks fails with SQLite's message; the gold fix passes."""
    schema_sql = database(tmp_path).schema()
    inputs = {"schema_sql": schema_sql, "query": "", "error": ""}
    bad = sql_fix.Fix(bug="b", fixed_sql="SELECT nme FROM customer")
    ok, reason = sql_fix.runs(bad, inputs)
    assert not ok and "no such column: nme" in reason
    assert sql_fix.runs(sql_fix.Fix(bug="b", fixed_sql=GOLD), inputs) == (True, "runs")
    assert not sql_fix.runs(sql_fix.Fix(bug="b", fixed_sql=GOLD), {**inputs, "schema_sql": "CREATE TABLE t (x);"})[0]
