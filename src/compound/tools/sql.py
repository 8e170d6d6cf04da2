"""A SQL tool over SQLAlchemy, read-only by default.

Every statement is parsed with sqlglot before it reaches the database. Read-only mode accepts exactly
one statement, and only a query (SELECT, set operations, CTEs whose parts are all queries); anything
else (a second statement, DML or DDL anywhere in the tree, PRAGMA, ATTACH, SELECT INTO, an
unparseable text) is refused with a reason. SQLite connections are also put in ``query_only`` mode, as
a second wall. Results are capped at ``row_limit`` rows, and queries at ``timeout_s`` seconds. Write
access is an explicit opt-in (``read_only=False``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from compound.core.errors import InputError
from compound.tools.base import Tool

_READ_ROOTS = (exp.Select, exp.Union, exp.Intersect, exp.Except)
_WRITE_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "AlterTable",
        "TruncateTable",
        "Command",
        "Pragma",
        "Attach",
        "Detach",
        "Copy",
        "LoadData",
        "Transaction",
        "Commit",
        "Rollback",
        "Grant",
        "Revoke",
        "Set",
        "Use",
        "Analyze",
        "Into",
        "Lock",
    )
    if hasattr(exp, name)
)


class SQLRefused(InputError):
    """The statement was refused before reaching the database."""


def check_read_only(sql: str, dialect: str | None = None) -> exp.Expression:
    """Return the parsed query, or raise ``SQLRefused`` saying why it is not a single read query."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except sqlglot.errors.SqlglotError as e:
        raise SQLRefused(f"could not parse the statement, so it was not run: {e}") from None
    if len(statements) != 1:
        raise SQLRefused(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _READ_ROOTS):
        raise SQLRefused(f"only read queries are allowed in read-only mode, got {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            raise SQLRefused(f"the query contains a {node.key.upper()}, which writes; refused in read-only mode")
    return tree


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated}


class SQLDatabase:
    def __init__(
        self, url_or_engine: Any, *, read_only: bool = True, row_limit: int = 100, timeout_s: float = 5.0
    ) -> None:
        from sqlalchemy import create_engine, event

        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.read_only = read_only
        self.row_limit = row_limit
        self.timeout_s = timeout_s
        self.dialect = {"postgresql": "postgres"}.get(self.engine.dialect.name, self.engine.dialect.name)
        if self.engine.dialect.name == "sqlite" and read_only:
            event.listen(self.engine, "connect", lambda conn, _: conn.execute("PRAGMA query_only = ON"))

    def schema(self) -> str:
        """CREATE TABLE statements for every table (what a model needs to write queries)."""
        from sqlalchemy import MetaData
        from sqlalchemy.schema import CreateTable

        meta = MetaData()
        meta.reflect(self.engine)
        return "\n".join(str(CreateTable(t).compile(self.engine)).strip() + ";" for t in meta.sorted_tables)

    def query(self, sql: str) -> QueryResult:
        if self.read_only:
            check_read_only(sql, self.dialect)
        start = time.monotonic()
        with self.engine.connect() as conn:
            self._set_timeout(conn, start)
            cursor = conn.exec_driver_sql(sql)
            if cursor.returns_rows:
                columns = list(cursor.keys())
                rows = [list(r) for r in cursor.fetchmany(self.row_limit + 1)]
            else:
                columns, rows = [], []
            if not self.read_only:
                conn.commit()
        truncated = len(rows) > self.row_limit
        return QueryResult(columns, rows[: self.row_limit], truncated, time.monotonic() - start)

    def _set_timeout(self, conn: Any, start: float) -> None:
        name = self.engine.dialect.name
        if name == "sqlite":
            deadline = start + self.timeout_s
            conn.connection.driver_connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        elif name == "postgresql":
            conn.exec_driver_sql(f"SET statement_timeout = {int(self.timeout_s * 1000)}")
        elif name in ("mysql", "mariadb"):
            conn.exec_driver_sql(f"SET SESSION MAX_EXECUTION_TIME = {int(self.timeout_s * 1000)}")

    def as_tool(self, name: str = "sql_query") -> Tool:
        def sql_query(sql: str) -> dict[str, Any]:
            return self.query(sql).to_dict()

        mode = "read-only: one SELECT query" if self.read_only else "read and write"
        return Tool(
            sql_query,
            name,
            f"Run SQL on the database ({mode}, at most {self.row_limit} rows). Schema:\n{self.schema()}",
        )
