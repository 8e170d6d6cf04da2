import sqlite3

import pytest

from compound.tools.sql import SQLDatabase, SQLRefused, check_read_only

WRITES = [
    "INSERT INTO users VALUES (9, 'mallory')",
    "insert into users(name) select name from users",
    "UPDATE users SET name = 'x'",
    "DELETE FROM users",
    "DROP TABLE users",
    "CREATE TABLE t (a int)",
    "CREATE TABLE t AS SELECT * FROM users",
    "ALTER TABLE users ADD COLUMN b int",
    "ALTER TABLE users RENAME TO u2",
    "REPLACE INTO users VALUES (1, 'x')",
    "INSERT OR REPLACE INTO users VALUES (1, 'x')",
    "CREATE INDEX i ON users(name)",
    "DROP INDEX IF EXISTS i",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER tr AFTER INSERT ON users BEGIN DELETE FROM users; END",
    "PRAGMA query_only = OFF",
    "PRAGMA writable_schema = 1",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "DETACH DATABASE x",
    "VACUUM",
    "VACUUM INTO '/tmp/copy.db'",
    "REINDEX users",
    "ANALYZE",
    "BEGIN; DELETE FROM users; COMMIT",
    "BEGIN TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s1",
    "SELECT 1; DROP TABLE users",
    "SELECT * FROM users; DELETE FROM users",
    "SELECT 1;DELETE FROM users;",
    "SELECT 1; -- harmless\nDELETE FROM users",
    "SELECT 1 /* ; */ ; UPDATE users SET name='x'",
    "/* comment */ DELETE FROM users",
    "-- just a comment\nDELETE FROM users",
    "DELETE /* hidden */ FROM users WHERE 1=1",
    "WITH x AS (DELETE FROM users RETURNING *) SELECT * FROM x",
    "WITH x AS (INSERT INTO users VALUES (5,'e') RETURNING *) SELECT * FROM x",
    "WITH x AS (UPDATE users SET name='z' RETURNING *) SELECT * FROM x",
    "WITH RECURSIVE r(n) AS (SELECT 1) DELETE FROM users",
    "WITH a AS (SELECT 1) INSERT INTO users SELECT * FROM a",
    "WITH a AS (SELECT 1) UPDATE users SET name = 'q'",
    "SELECT * INTO backup FROM users",
    "UPSERT INTO users VALUES (1, 'x')",
    "MERGE INTO users USING other ON users.id = other.id WHEN MATCHED THEN DELETE",
    "TRUNCATE TABLE users",
    "GRANT ALL ON users TO public",
    "REVOKE ALL ON users FROM public",
    "SET search_path = evil",
    "COPY users FROM '/etc/passwd'",
    "LOAD DATA INFILE '/tmp/x' INTO TABLE users",
    "insert into users values (10, 'lower')",
    "InSeRt InTo users VALUES (11, 'mixed')",
    "SELECT load_extension('/tmp/evil.so')",
    "",
    "   ;  ",
]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1,'ann'),(2,'bob');"
    )
    conn.commit()
    conn.close()
    return path


def snapshot(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT sql FROM sqlite_master").fetchall(), conn.execute(
            "SELECT * FROM users ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


def test_no_write_ever_reaches_the_database(db):
    assert len(WRITES) >= 50
    tool = SQLDatabase(f"sqlite:///{db}")
    executed = []
    from sqlalchemy import event

    event.listen(tool.engine, "before_cursor_execute", lambda conn, cursor, statement, *a: executed.append(statement))
    before = snapshot(db)
    refused = 0
    for sql in WRITES:
        try:
            tool.query(sql)
        except SQLRefused:
            refused += 1
        except Exception:
            pass  # a statement the engine itself rejected (e.g. load_extension disabled) still wrote nothing
    assert snapshot(db) == before
    # everything but the one SELECT calling a function was refused before the database saw it
    assert refused >= len(WRITES) - 1
    assert [s for s in executed if "load_extension" not in s] == []


def test_reads_work_with_row_limit(db):
    tool = SQLDatabase(f"sqlite:///{db}", row_limit=1)
    out = tool.query("WITH u AS (SELECT * FROM users) SELECT name FROM u ORDER BY id")
    assert out.columns == ["name"] and out.rows == [["ann"]] and out.truncated
    assert tool.query("SELECT name FROM users UNION SELECT 'x'").rows


def test_sqlite_connection_itself_is_query_only(db):
    tool = SQLDatabase(f"sqlite:///{db}")
    with tool.engine.connect() as conn:
        with pytest.raises(Exception, match="readonly|query_only|attempt to write"):
            conn.exec_driver_sql("DELETE FROM users")


def test_timeout_stops_a_long_query(db):
    tool = SQLDatabase(f"sqlite:///{db}", timeout_s=0.2)
    with pytest.raises(Exception, match="interrupt"):
        tool.query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")


def test_writes_need_explicit_opt_in(db):
    tool = SQLDatabase(f"sqlite:///{db}", read_only=False)
    tool.query("INSERT INTO users VALUES (3, 'cy')")
    assert snapshot(db)[1][-1] == (3, "cy")


def test_refusal_reasons_are_specific():
    with pytest.raises(SQLRefused, match="exactly one statement"):
        check_read_only("SELECT 1; SELECT 2")
    with pytest.raises(SQLRefused, match="DELETE"):
        check_read_only("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "postgres")
    with pytest.raises(SQLRefused, match="parse"):
        check_read_only("SELEC * FROM")


def test_schema_and_tool(db):
    tool = SQLDatabase(f"sqlite:///{db}").as_tool()
    assert "CREATE TABLE users" in tool.description
    assert tool(sql="SELECT count(*) AS n FROM users") == {"columns": ["n"], "rows": [[2]], "truncated": False}
