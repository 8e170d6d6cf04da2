"""The SQL guard in depth: side-effect functions, executable comments and pathological nesting are
refused before the database sees them, and real PostgreSQL and MariaDB servers (Debian's packages,
started on loopback by these tests) refuse writes on their own through the read-only transaction.
The server tests are marked ``integration``: CI's ``make test`` runs them, the quick unit run does not."""

import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from compound.tools.sql import SQLDatabase, SQLRefused, check_read_only

sys.path.insert(0, str(Path(__file__).parent / "relsafe_site"))
import relsafe_servers  # noqa: E402

DIALECTS = ["sqlite", "postgres", "mysql"]

SIDE_EFFECTS = {
    "postgres": [
        "SELECT nextval('orders_id_seq')",
        "SELECT setval('orders_id_seq', 1)",
        "SELECT set_config('search_path', 'evil', false)",
        "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
        "SELECT dblink_exec('host=x', 'DROP TABLE orders')",
        "SELECT lo_import('/etc/passwd')",
        "SELECT lo_export(16385, '/tmp/x')",
        "SELECT pg_sleep(10)",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_terminate_backend(1)",
        "SELECT id FROM orders WHERE id = (SELECT nextval('orders_id_seq'))",
        "WITH x AS (SELECT set_config('a', 'b', true) AS v) SELECT * FROM x",
        "SELECT my_user_function(id) FROM orders",
        "SELECT pg_catalog.pg_sleep(1)",
        "SELECT \"nextval\"('orders_id_seq')",
        "SELECT txid_current()",
        "SELECT (SELECT nextval('orders_id_seq'))::text",
    ],
    "sqlite": [
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT writefile('/tmp/x', 'y')",
        "SELECT readfile('/etc/passwd')",
    ],
    "mysql": [
        "SELECT SLEEP(10)",
        "SELECT BENCHMARK(100000000, MD5('a'))",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT GET_LOCK('x', 10)",
        "SELECT RELEASE_LOCK('x')",
        "SELECT id FROM orders WHERE SLEEP(1) = 0",
        "SELECT sys_exec('rm -rf /')",
        "SELECT `sleep`(5)",
    ],
}
SIDE_EFFECT_CASES = [(d, q) for d, qs in SIDE_EFFECTS.items() for q in qs]


@pytest.mark.parametrize("dialect,sql", SIDE_EFFECT_CASES)
def test_functions_with_side_effects_are_refused(dialect, sql):
    with pytest.raises(SQLRefused, match="allow-list"):
        check_read_only(sql, dialect)


EXECUTABLE_COMMENTS = [
    "SELECT 1 /*! , SLEEP(5) */",
    "SELECT id FROM orders /*!50000 UNION SELECT LOAD_FILE('/etc/passwd') */",
    "/*! DROP TABLE orders */ SELECT 1",
    "SELECT 1 /*M! , SLEEP(5) */",
]


@pytest.mark.parametrize("sql", EXECUTABLE_COMMENTS)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_mysql_executable_comments_are_refused(dialect, sql):
    with pytest.raises(SQLRefused, match="executable comment"):
        check_read_only(sql, dialect)


PATHOLOGICAL = {
    "brackets": "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    "subqueries": "SELECT * FROM " + "(SELECT * FROM " * 400 + "t" + ") AS s" * 400,
    "functions": "SELECT " + "abs(" * 3000 + "1" + ")" * 3000,
    "nots": "SELECT " + "NOT " * 4000 + "1",
    "long": "SELECT 1 WHERE " + " AND ".join(["1=1"] * 20000),
    "not-text": 12345,
}


@pytest.mark.parametrize("case", PATHOLOGICAL)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_pathological_statements_are_refused_cleanly(dialect, case):
    with pytest.raises(SQLRefused):  # never a RecursionError
        check_read_only(PATHOLOGICAL[case], dialect)


READS = [
    "SELECT count(*), sum(total), avg(total), max(total) FROM orders GROUP BY customer HAVING count(*) > 1",
    "SELECT coalesce(customer, 'x'), upper(customer), length(customer), cast(total AS INTEGER) FROM orders",
    "SELECT id, row_number() OVER (ORDER BY total), rank() OVER (PARTITION BY customer ORDER BY total) FROM orders",
    "SELECT CASE WHEN total > 10 THEN 'big' ELSE 'small' END, abs(total), round(total, 1) FROM orders",
    "WITH big AS (SELECT * FROM orders WHERE total > 5) SELECT customer FROM big UNION SELECT 'none'",
    "SELECT * FROM orders AS o WHERE EXISTS (SELECT 1 FROM orders AS p WHERE p.id = o.id) ORDER BY id LIMIT 5",
    "SELECT customer FROM orders WHERE customer LIKE 'a%' AND total BETWEEN 1 AND 100 OR id IN (1, 2, 3)",
]


@pytest.mark.parametrize("sql", READS)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_ordinary_reads_pass(dialect, sql):
    check_read_only(sql, dialect)


def test_a_pure_function_can_be_allowed_by_name():
    with pytest.raises(SQLRefused, match="MY_PURE_FN"):
        check_read_only("SELECT my_pure_fn(1)", "postgres")
    check_read_only("SELECT my_pure_fn(1)", "postgres", frozenset({"my_pure_fn"}))


# --- SQLite: query_only also on connections the engine pooled before it was handed over ----------------


def test_sqlite_query_only_applies_to_connections_already_pooled(tmp_path):
    path = tmp_path / "shop.db"
    sqlite3.connect(path).executescript(
        "CREATE TABLE orders (id INTEGER, total REAL); INSERT INTO orders VALUES (1, 2)"
    )
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.QueuePool)
    with engine.connect() as conn:  # a connection now sits in the pool, opened before the guard existed
        conn.exec_driver_sql("SELECT 1")
    db = SQLDatabase(engine)
    assert db.query("SELECT count(*) FROM orders").rows == [[1]]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 1
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            conn.exec_driver_sql("INSERT INTO orders VALUES (2, 3)")


# --- real servers --------------------------------------------------------------------------------------

_SETUP = {
    "postgresql": [
        "CREATE TABLE orders (id SERIAL PRIMARY KEY, customer TEXT, total REAL)",
        "INSERT INTO orders (customer, total) VALUES ('ann', 12.5), ('bob', 3.0), ('ann', 7.0)",
        "CREATE FUNCTION bump() RETURNS int AS $$ INSERT INTO orders (customer, total) VALUES ('evil', 0) "
        "RETURNING id $$ LANGUAGE sql",
    ],
    "mysql": [
        "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer TEXT, total REAL)",
        "INSERT INTO orders (customer, total) VALUES ('ann', 12.5), ('bob', 3.0), ('ann', 7.0)",
        "CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO orders (customer, total) "
        "VALUES ('evil', 0); RETURN 1; END",
    ],
}


def _server(kind):
    if kind == "postgresql":
        if relsafe_servers.postgres_bin() is None:
            pytest.skip("PostgreSQL server binaries are absent (apt-get install postgresql)")
        pytest.importorskip("psycopg", reason="the [sql] extra (psycopg) is not installed")
        return relsafe_servers.postgres_server()
    if relsafe_servers.mariadb_bins() is None:
        pytest.skip("MariaDB server binaries are absent (apt-get install mariadb-server)")
    pytest.importorskip("pymysql", reason="the [sql] extra (pymysql) is not installed")
    return relsafe_servers.mariadb_server()


@pytest.fixture(scope="module", params=["postgresql", "mysql"], ids=["postgres", "mariadb"])
def relsafe_server(request):
    """A real server with an ``orders`` table and a ``bump()`` function that writes; yields its URL."""
    with _server(request.param) as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for statement in _SETUP[request.param]:
                conn.exec_driver_sql(statement)
        engine.dispose()
        yield url


def _count(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM orders").scalar()
    finally:
        engine.dispose()


@pytest.mark.integration
def test_reads_work_on_the_server(relsafe_server):
    db = SQLDatabase(relsafe_server, row_limit=2)
    result = db.query("SELECT customer, sum(total) FROM orders GROUP BY customer ORDER BY customer")
    assert [r[0] for r in result.rows] == ["ann", "bob"]
    assert db.query("SELECT id FROM orders ORDER BY id").truncated
    assert "orders" in db.schema()
    db.engine.dispose()


@pytest.mark.integration
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT bump()",
        "SELECT id FROM orders WHERE id = bump()",
        "SELECT 1 /*! , bump() */",
        "DELETE FROM orders",
        "SELECT * FROM orders; DELETE FROM orders",
        "SELECT * FROM orders FOR UPDATE",
    ],
)
def test_the_guard_refuses_before_the_server(relsafe_server, sql):
    db = SQLDatabase(relsafe_server)
    with pytest.raises(SQLRefused):
        db.query(sql)
    db.engine.dispose()
    assert _count(relsafe_server) == 3


@pytest.mark.integration
def test_the_server_refuses_a_write_the_guard_was_told_to_allow(relsafe_server):
    """The second wall: even with bump() wrongly allowed, the read-only transaction stops its INSERT."""
    db = SQLDatabase(relsafe_server, allow_functions={"bump"})
    with pytest.raises(sa.exc.DBAPIError, match="(?i)read.only"):
        db.query("SELECT bump()")
    db.engine.dispose()
    assert _count(relsafe_server) == 3


@pytest.mark.integration
def test_nextval_is_refused_by_the_postgres_server_too(relsafe_server):
    if not relsafe_server.startswith("postgresql"):
        pytest.skip("sequences with nextval are PostgreSQL's")
    db = SQLDatabase(relsafe_server, allow_functions={"nextval"})
    with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
        db.query("SELECT nextval('orders_id_seq')")
    db.engine.dispose()


@pytest.mark.integration
def test_a_slow_query_is_stopped_by_the_server_timeout(relsafe_server):
    sleep = "pg_sleep(5)" if relsafe_server.startswith("postgresql") else "SLEEP(5)"
    db = SQLDatabase(relsafe_server, timeout_s=0.5, allow_functions={sleep.split("(")[0]})
    import time

    t0 = time.monotonic()
    try:
        db.query(f"SELECT {sleep}")
    except sa.exc.DBAPIError:
        pass  # PostgreSQL cancels with an error; MariaDB's SLEEP returns 1 when interrupted
    assert time.monotonic() - t0 < 4
    db.engine.dispose()


@pytest.mark.parametrize(
    "dialect,sql",
    [
        ("mysql", "SELECT * FROM orders INTO OUTFILE '/tmp/x'"),
        ("postgres", "EXPLAIN ANALYZE DELETE FROM orders"),
        ("postgres", "COPY orders TO '/tmp/x'"),
        ("sqlite", "SELECT 1; ATTACH 'x.db' AS y"),
        ("postgres", "SELECT * INTO new_orders FROM orders"),
    ],
)
def test_writes_in_disguise_are_refused(dialect, sql):
    with pytest.raises(SQLRefused):
        check_read_only(sql, dialect)


def test_generate_series_is_pure():
    check_read_only("SELECT * FROM generate_series(1, 10)", "postgres")
