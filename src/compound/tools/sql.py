"""A SQL tool over SQLAlchemy, read-only by default.

Read-only mode has two walls. First, every statement is checked before it reaches the database
(``compound.tools.sql_guard``): one query, nothing that writes anywhere in its tree, only functions on
an allow-list of pure ones, no MySQL executable comments, bounded size and nesting. Second, the
database enforces it too: on PostgreSQL each query runs in a ``SET TRANSACTION READ ONLY`` transaction, on MySQL/MariaDB in ``START TRANSACTION READ ONLY``, and on SQLite
every connection of the engine is ``query_only``, including connections the engine already pooled
before it was handed over (set at each checkout). Read-only queries are always rolled back.
Results are capped at ``row_limit`` rows, and queries at ``timeout_s`` seconds. Write access is an
explicit opt-in (``read_only=False``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from compound.tools.base import Tool
from compound.tools.sql_guard import SQLRefused, check_read_only

__all__ = ["QueryResult", "SQLDatabase", "SQLRefused", "check_read_only"]


def _query_only(dbapi_conn: Any, *_: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only = ON")


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
        self,
        url_or_engine: Any,
        *,
        read_only: bool = True,
        row_limit: int = 100,
        timeout_s: float = 5.0,
        allow_functions: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        from sqlalchemy import create_engine, event

        self.engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        self.read_only = read_only
        self.row_limit = row_limit
        self.timeout_s = timeout_s
        self.allow_functions = frozenset(allow_functions)
        self.dialect = {"postgresql": "postgres"}.get(self.engine.dialect.name, self.engine.dialect.name)
        if self.engine.dialect.name == "sqlite" and read_only:
            # new connections, and those already in the pool (an engine used before it was handed over)
            event.listen(self.engine, "connect", _query_only)
            event.listen(self.engine, "checkout", _query_only)

    def schema(self) -> str:
        """CREATE TABLE statements for every table (what a model needs to write queries)."""
        from sqlalchemy import MetaData
        from sqlalchemy.schema import CreateTable

        meta = MetaData()
        meta.reflect(self.engine)
        return "\n".join(str(CreateTable(t).compile(self.engine)).strip() + ";" for t in meta.sorted_tables)

    def query(self, sql: str) -> QueryResult:
        if self.read_only:
            check_read_only(sql, self.dialect, self.allow_functions)
        start = time.monotonic()
        with self.engine.connect() as conn:
            if self.read_only:
                self._read_only_transaction(conn)
            self._set_timeout(conn, start)
            cursor = conn.exec_driver_sql(_literal_percent(sql, self.engine.dialect.paramstyle))
            if cursor.returns_rows:
                columns = list(cursor.keys())
                rows = [list(r) for r in cursor.fetchmany(self.row_limit + 1)]
            else:
                columns, rows = [], []
            if not self.read_only:
                conn.commit()
        truncated = len(rows) > self.row_limit
        return QueryResult(columns, rows[: self.row_limit], truncated, time.monotonic() - start)

    def _read_only_transaction(self, conn: Any) -> None:
        """The database's own wall: the transaction the query runs in cannot write (rolled back after)."""
        name = self.engine.dialect.name
        if name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # the first statement of the transaction
        elif name in ("mysql", "mariadb"):
            conn.exec_driver_sql("START TRANSACTION READ ONLY")

    def _set_timeout(self, conn: Any, start: float) -> None:
        name = self.engine.dialect.name
        if name == "sqlite":
            deadline = start + self.timeout_s
            conn.connection.driver_connection.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        elif name == "postgresql":
            conn.exec_driver_sql(f"SET statement_timeout = {int(self.timeout_s * 1000)}")
        elif getattr(conn.dialect, "is_mariadb", False):  # known once connected; seconds, another name
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {self.timeout_s:.3f}")
        elif name == "mysql":
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


def _literal_percent(sql: str, paramstyle: str) -> str:
    """Drivers with %-style parameters (pymysql, psycopg) read ``%`` as a placeholder even without
    parameters: ``DATE_FORMAT(x, '%Y')`` would fail; their ``%%`` is a literal ``%``."""
    return sql.replace("%", "%%") if paramstyle in ("format", "pyformat") else sql
