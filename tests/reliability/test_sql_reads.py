"""The SQL guard reads what is harmless and still refuses every write, tested against real databases.

Read-only built-ins and table-valued functions are allowed per dialect (SQLite's ``sqlite_version()`` and
informational ``pragma_*`` table functions, PostgreSQL's ``pg_typeof`` or ``jsonb_each``, MariaDB's
``DATABASE()``...), and each allowed query really runs on SQLite, PostgreSQL and MariaDB (the servers are
Debian's packages started on loopback; those cases are marked ``integration``). A function called through
a schema (``evil.lower(x)``) may be a user's function that writes, and is refused."""

import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from compound.tools.sql import SQLDatabase, SQLRefused, check_read_only

sys.path.insert(0, str(Path(__file__).parent / "relsafe_site"))
import relsafe_servers  # noqa: E402

SQLITE_READS = [
    "SELECT sqlite_version()",
    "SELECT * FROM pragma_table_info('users')",
    "SELECT name, type FROM pragma_table_info('users') WHERE pk = 1",
    "SELECT * FROM pragma_index_list('users')",
    "SELECT * FROM pragma_foreign_key_list('users')",
    "SELECT name FROM pragma_table_list",
    "SELECT * FROM pragma_database_list",
    "SELECT m.name, p.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table'",
    "SELECT value FROM json_each('[1, 2, 3]')",
    "SELECT json_extract('{\"a\": 1}', '$.a'), json_valid('{}'), json_array_length('[1]')",
    "SELECT typeof(name), hex(name), quote(name), instr(name, 'a'), glob('a*', name) FROM users",
    "SELECT sqlite_source_id(), changes(), total_changes()",
    "SELECT * FROM pragma_compile_options",
    "SELECT iif(id > 1, 'big', 'small'), printf('%05d', id), unicode(name) FROM users",
    "SELECT * FROM pragma_function_list WHERE name = 'lower'",
]

SQLITE_WRITES = [
    "SELECT load_extension('/tmp/evil.so')",
    "PRAGMA query_only = 0",
    "SELECT * FROM pragma_journal_mode('delete')",
    "SELECT * FROM pragma_user_version(7)",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "SELECT sqlite_version(); DELETE FROM users",
    "INSERT INTO users SELECT * FROM pragma_table_info('users')",
    "SELECT main.sqlite_version()",
    "SELECT writefile('/tmp/x', 'y')",
    "SELECT fts3_tokenizer('simple')",
]


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); CREATE INDEX users_name ON users(name);"
        "INSERT INTO users (name) VALUES ('ann'), ('bob');"
    )
    conn.close()
    return path


@pytest.mark.parametrize("sql", SQLITE_READS)
def test_sqlite_harmless_reads_run_on_a_real_database(sqlite_db, sql):
    db = SQLDatabase(f"sqlite:///{sqlite_db}")
    result = db.query(sql)
    assert result.rows is not None
    db.engine.dispose()


def test_the_issues_two_sqlite_cases_give_real_answers(sqlite_db):
    db = SQLDatabase(f"sqlite:///{sqlite_db}")
    assert db.query("SELECT sqlite_version()").rows[0][0] == sqlite3.sqlite_version
    assert [r[1] for r in db.query("SELECT * FROM pragma_table_info('users')").rows] == ["id", "name"]
    db.engine.dispose()


@pytest.mark.parametrize("sql", SQLITE_WRITES)
def test_sqlite_writes_and_side_effects_are_still_refused(sqlite_db, sql):
    db = SQLDatabase(f"sqlite:///{sqlite_db}")
    with pytest.raises(SQLRefused):
        db.query(sql)
    db.engine.dispose()
    conn = sqlite3.connect(sqlite_db)
    assert conn.execute("SELECT count(*) FROM users").fetchone() == (2,)
    assert conn.execute("PRAGMA user_version").fetchone() == (0,)
    conn.close()


@pytest.mark.parametrize(
    "dialect,sql",
    [
        ("postgres", "SELECT * FROM pragma_table_info('users')"),
        ("mysql", "SELECT sqlite_version()"),
        ("sqlite", "SELECT pg_typeof(1)"),
        ("sqlite", "SELECT current_setting('x')"),
    ],
)
def test_a_name_is_allowed_only_in_its_own_dialect(dialect, sql):
    with pytest.raises(SQLRefused, match="allow-list"):
        check_read_only(sql, dialect)


@pytest.mark.parametrize(
    "dialect,sql",
    [
        ("postgres", "SELECT evil.lower(name) FROM users"),
        ("postgres", 'SELECT "evil".pg_typeof(1)'),
        ("mysql", "SELECT evil.json_extract(name, '$') FROM users"),
        ("mysql", "SELECT pg_catalog.lower(name) FROM users"),
    ],
)
def test_a_function_called_through_a_schema_is_refused(dialect, sql):
    with pytest.raises(SQLRefused, match="through a schema"):
        check_read_only(sql, dialect)


def test_pg_catalog_qualified_builtins_pass_on_postgres_only():
    check_read_only("SELECT pg_catalog.pg_typeof(1), pg_catalog.lower('A')", "postgres")


# ---- real servers ----

SERVER_READS = {
    "postgresql": [
        "SELECT version()",
        "SELECT pg_typeof(1), format_type(23, NULL)",
        "SELECT current_setting('server_version')",
        "SELECT current_database(), current_schema(), current_user",
        "SELECT * FROM jsonb_each('{\"a\": 1}'::jsonb)",
        "SELECT * FROM json_array_elements('[1, 2]')",
        "SELECT * FROM unnest(ARRAY[1, 2])",
        "SELECT * FROM generate_series(1, 3)",
        "SELECT pg_get_viewdef('v_users'::regclass)",
        "SELECT to_regclass('users'), has_table_privilege('users', 'SELECT')",
        "SELECT pg_size_pretty(pg_total_relation_size('users'))",
        "SELECT obj_description('users'::regclass), col_description('users'::regclass, 1)",
        "SELECT string_to_array('a,b', ','), array_to_string(ARRAY[1, 2], '-')",
        "SELECT pg_catalog.lower(name) FROM users",
        "SELECT jsonb_typeof('1'::jsonb), to_jsonb(name) FROM users",
        "SELECT name FROM users WHERE name LIKE 'a%' AND '100%' = '100%'",
    ],
    "mysql": [
        "SELECT version()",
        "SELECT DATABASE(), SCHEMA(), CURRENT_USER(), CONNECTION_ID()",
        "SELECT JSON_EXTRACT('{\"a\": 1}', '$.a'), JSON_VALID('{}'), JSON_LENGTH('[1, 2]')",
        "SELECT IFNULL(name, 'x'), DATE_FORMAT(NOW(), '%Y'), FOUND_ROWS() FROM users",
        "SELECT @@version, @@character_set_server",
        "SELECT CHARSET(name), COLLATION(name) FROM users",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
        "SELECT SUBSTRING_INDEX('a.b.c', '.', 2), TO_BASE64('x'), INET_ATON('10.0.0.1')",
        "SELECT UTC_TIMESTAMP(), CURDATE(), SEC_TO_TIME(100)",
        "SELECT JSON_KEYS('{\"a\": 1}'), JSON_TYPE('[]'), JSON_QUOTE(name) FROM users",
        "SELECT LAST_INSERT_ID(), ROW_COUNT()",
        "SELECT UUID() IS NOT NULL",
        "SELECT GROUP_CONCAT(name ORDER BY name) FROM users",
        "SELECT * FROM v_users",
        "SELECT COUNT(*) FROM users WHERE name REGEXP '^a'",
        "SELECT name FROM users WHERE name LIKE 'a%' AND '100%' = '100%'",
    ],
}

SERVER_WRITES = {
    "postgresql": [
        "SELECT bump()",
        "SELECT nextval('users_id_seq')",
        "SELECT set_config('search_path', 'evil', false)",
        "SELECT public.bump()",
        "SELECT pg_sleep(5)",
        "SELECT * FROM users FOR UPDATE",
        "DELETE FROM users",
    ],
    "mysql": [
        "SELECT bump()",
        "SELECT SLEEP(5)",
        "SELECT GET_LOCK('x', 1)",
        "SELECT LOAD_FILE('/etc/passwd')",
        "SELECT * FROM users INTO OUTFILE '/tmp/x'",
        "SELECT 1 /*! , bump() */",
        "DELETE FROM users",
    ],
}

_SETUP = {
    "postgresql": [
        "CREATE TABLE users (id SERIAL PRIMARY KEY, name TEXT)",
        "INSERT INTO users (name) VALUES ('ann'), ('bob')",
        "CREATE VIEW v_users AS SELECT name FROM users",
        "CREATE FUNCTION bump() RETURNS int AS $$ INSERT INTO users (name) VALUES ('evil') RETURNING id $$ LANGUAGE sql",
    ],
    "mysql": [
        "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT)",
        "INSERT INTO users (name) VALUES ('ann'), ('bob')",
        "CREATE VIEW v_users AS SELECT name FROM users",
        "CREATE FUNCTION bump() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO users (name) VALUES ('evil'); RETURN 1; END",
    ],
}


@pytest.fixture(scope="module", params=["postgresql", "mysql"], ids=["postgres", "mariadb"])
def server(request):
    if request.param == "postgresql":
        if relsafe_servers.postgres_bin() is None:
            pytest.skip("PostgreSQL server binaries are absent (apt-get install postgresql)")
        pytest.importorskip("psycopg")
        context = relsafe_servers.postgres_server()
    else:
        if relsafe_servers.mariadb_bins() is None:
            pytest.skip("MariaDB server binaries are absent (apt-get install mariadb-server)")
        pytest.importorskip("pymysql")
        context = relsafe_servers.mariadb_server()
    with context as url:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for statement in _SETUP[request.param]:
                conn.exec_driver_sql(statement)
        engine.dispose()
        yield request.param, url


def _count(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM users").scalar()
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.parametrize("index", range(16))
def test_harmless_reads_run_on_the_server(server, index):
    kind, url = server
    db = SQLDatabase(url)
    try:
        result = db.query(SERVER_READS[kind][index])
    finally:
        db.engine.dispose()
    assert result.rows


@pytest.mark.integration
@pytest.mark.parametrize("index", range(7))
def test_writes_are_still_refused_by_the_guard_on_the_server(server, index):
    kind, url = server
    db = SQLDatabase(url)
    with pytest.raises(SQLRefused):
        db.query(SERVER_WRITES[kind][index])
    db.engine.dispose()
    assert _count(url) == 2


@pytest.mark.integration
def test_a_percent_sign_reaches_the_server_as_itself(server):
    _, url = server
    db = SQLDatabase(url)
    try:
        assert db.query("SELECT '100%', '%%'").rows == [["100%", "%%"]]
    finally:
        db.engine.dispose()


def test_a_percent_sign_reaches_sqlite_as_itself(sqlite_db):
    db = SQLDatabase(f"sqlite:///{sqlite_db}")
    assert db.query("SELECT '100%', '%%'").rows == [["100%", "%%"]]
    db.engine.dispose()
