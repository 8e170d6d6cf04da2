"""The read-only SQL guard: what a statement must be before it reaches the database.

A statement passes only if it is one query (SELECT, set operations, CTEs whose parts are all queries)
with nothing that writes anywhere in its tree (DML, DDL, PRAGMA, ATTACH, SELECT INTO, FOR UPDATE, SET,
transactions), and every function it calls is on an **allow-list** of functions known to be pure.

Why an allow-list and not a deny-list of dangerous functions: the functions that write, sleep, read
files or reach other servers differ per server, version and extension (``nextval``, ``setval``,
``set_config``, ``dblink_exec``, ``lo_import``, ``pg_read_file``, ``pg_sleep``, ``SLEEP``, ``BENCHMARK``,
``LOAD_FILE``, ``GET_LOCK``, ...), and any user-defined function can write (``CREATE FUNCTION ...``
called from a SELECT). No deny-list can name them all; an allow-list fails closed. A pure function the
list lacks is refused with its name, and the caller may add it (``allow_functions=``).

The allow-list has a common part and one per dialect (``DIALECT_NAMES``): the read-only built-ins and
table-valued functions users need to look at a database, such as SQLite's ``sqlite_version()`` and its
informational ``pragma_*`` table functions (``SELECT * FROM pragma_table_info('users')``: SQLite offers
table functions only for pragmas without side effects), PostgreSQL's ``pg_typeof``, ``current_setting``,
``jsonb_each`` or ``pg_get_viewdef``, MySQL/MariaDB's ``DATABASE()`` or ``JSON_EXTRACT``. A name is allowed
only in its own dialect (``pragma_table_info`` means nothing on PostgreSQL).

Also refused: MySQL/MariaDB executable comments (``/*! ... */``, ``/*M! ... */``, which the server runs
as SQL while parsers see a comment), statements over ``MAX_CHARS`` characters, and nesting deeper than
``MAX_DEPTH`` brackets (checked before the parser runs, so no ``RecursionError``).

This is the first wall. The second is the database itself: ``SQLDatabase`` runs read-only queries in a
read-only transaction on PostgreSQL and MySQL/MariaDB and on ``query_only`` connections on SQLite.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from compound.core.errors import InputError

MAX_DEPTH = 64
MAX_CHARS = 20_000

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

#: sqlglot's typed functions that are pure (besides every aggregate, ``exp.AggFunc``)
_PURE_CLASSES = tuple(
    getattr(exp, name)
    for name in """Cast TryCast Coalesce Case If Nullif Abs Round Floor Ceil Sqrt Pow Ln Log Exp Sign Lower Upper
    Length Substring Trim Concat ConcatWs StrPosition Left Right Pad Initcap Reverse Repeat DateTrunc TimestampTrunc
    TimeTrunc Extract CurrentDate CurrentTimestamp CurrentTime CurrentDatetime DateAdd DateSub DateDiff TimestampAdd
    TimestampSub TimestampDiff TsOrDsAdd TsOrDsToDate TsOrDsToTimestamp StrToTime StrToDate TimeToStr TimeStrToTime
    UnixToTime TimeToUnix Date DateFromParts Day Month Year Week DayOfWeek DayOfMonth DayOfYear Quarter Greatest Least
    RegexpLike RegexpExtract RegexpReplace Split Array JSONExtract JSONExtractScalar JSONBExtract ParseJSON MD5 SHA
    SHA2 Hex Lead Lag FirstValue LastValue NthValue RowNumber Ntile PercentRank CumeDist Rand Chr Ascii ToChar
    ToNumber Nvl2 Mod Stuff Levenshtein Unicode Uuid Trunc Time Timestamp Datetime StrToUnix Dayname Monthname GenerateSeries
    ExplodingGenerateSeries Exists Any All Some Interval Struct Bracket Filter Window Distinct Nvl
    CurrentVersion CurrentSchema CurrentUser CurrentCatalog CurrentRole CurrentSchemas Unnest Explode Posexplode
    JSONObject JSONArray JSONArrayAgg JSONObjectAgg JSONFormat JSONValue JSONExists JSONBContains JSONBExists
    JSONExtractArray JSONArrayContains JSONTable JSONType JSONKeys JSONBObjectAgg Format FormatJson
    ArrayToString StringToArray ArraySize ArrayContains ArrayConcat Encode Decode ToBase64 FromBase64 Collate
    LastDay MakeInterval Localtime Localtimestamp SysDate UtcDate UtcTime UtcTimestamp TimeToTimeStr
    Length ByteLength BitLength Soundex Space Uuid UnixSeconds Substring SubstringIndex Typeof
    """.split()
    if hasattr(exp, name)
)

#: pure functions sqlglot leaves untyped (matched by name, upper case)
PURE_NAMES = frozenset(
    """IFNULL NVL INSTR PRINTF FORMAT JULIANDAY DATE TIME DATETIME UNIXEPOCH TYPEOF TOTAL LTRIM RTRIM CHAR_LENGTH
    CHARACTER_LENGTH OCTET_LENGTH BIT_LENGTH POSITION TO_CHAR TO_DATE TO_NUMBER TO_TIMESTAMP DATE_PART DATE_FORMAT AGE
    RANK DENSE_RANK PERCENT_RANK CUME_DIST NTILE TRUNC TRUNCATE STRING_AGG ARRAY_AGG GROUP_CONCAT SUBSTR CEILING
    POWER LOG10 LOG2 PI RANDOM RAND NOW YEAR MONTH DAY HOUR MINUTE SECOND WEEKDAY DAYNAME MONTHNAME DAYOFWEEK
    DAYOFMONTH DAYOFYEAR WEEKOFYEAR QUARTER LAST_DAY STR_TO_DATE FROM_UNIXTIME UNIX_TIMESTAMP DATEDIFF TIMESTAMPDIFF
    DATE_ADD DATE_SUB ADDDATE SUBDATE JSON_EXTRACT JSON_VALUE JSON_UNQUOTE JSON_OBJECT JSON_ARRAY JSON_BUILD_OBJECT
    IIF CHR CHAR ASCII UNICODE HEX QUOTE REGEXP_REPLACE REGEXP_MATCHES REGEXP_SUBSTR SPLIT_PART INITCAP REVERSE
    REPEAT MD5 SHA1 SHA2 LPAD RPAD LEFT RIGHT REPLACE CONCAT CONCAT_WS LOWER UPPER LENGTH ABS ROUND FLOOR CEIL
    SQRT EXP LN LOG SIGN MOD GREATEST LEAST COALESCE NULLIF STRFTIME GENERATE_SERIES UNNEST ISNULL ZEROIFNULL
    EXTRACT CAST LIKELIHOOD LIKELY UNLIKELY SOUNDEX DEGREES RADIANS SIN COS TAN ASIN ACOS ATAN ATAN2 CBRT
    WIDTH_BUCKET TRANSLATE BTRIM STARTS_WITH MAKE_DATE MAKE_TIMESTAMP DATE_BIN JUSTIFY_DAYS ELT FIELD FIND_IN_SET
    LOCATE MID SPACE STRCMP CONV BIN OCT CRC32 COT EXPLODING_GENERATE_SERIES OVERLAY CURRENT_USER SESSION_USER USER
    VERSION CURRENT_SCHEMA CURRENT_DATABASE DATABASE""".split()
)

#: read-only built-ins and table-valued functions of one dialect (matched by name, upper case)
DIALECT_NAMES: dict[str, frozenset[str]] = {
    "sqlite": frozenset(
        """SQLITE_VERSION SQLITE_SOURCE_ID SQLITE_COMPILEOPTION_USED SQLITE_COMPILEOPTION_GET CHANGES TOTAL_CHANGES
        LAST_INSERT_ROWID GLOB LIKE JSON JSONB JSON_EXTRACT JSONB_EXTRACT JSON_ARRAY JSON_ARRAY_LENGTH JSON_OBJECT
        JSON_TYPE JSON_VALID JSON_QUOTE JSON_PATCH JSON_REMOVE JSON_INSERT JSON_REPLACE JSON_SET JSON_GROUP_ARRAY
        JSON_GROUP_OBJECT JSON_EACH JSON_TREE JSON_ERROR_POSITION JSON_PRETTY MAX MIN HEX UNHEX ZEROBLOB
        CONCAT CONCAT_WS OCTET_LENGTH SUBSTRING FORMAT TIMEDIFF
        PRAGMA_TABLE_INFO PRAGMA_TABLE_XINFO PRAGMA_TABLE_LIST PRAGMA_INDEX_LIST PRAGMA_INDEX_INFO PRAGMA_INDEX_XINFO
        PRAGMA_FOREIGN_KEY_LIST PRAGMA_DATABASE_LIST PRAGMA_COLLATION_LIST PRAGMA_FUNCTION_LIST PRAGMA_MODULE_LIST
        PRAGMA_PRAGMA_LIST PRAGMA_COMPILE_OPTIONS""".split()
    ),
    "postgres": frozenset(
        """PG_TYPEOF FORMAT_TYPE CURRENT_SETTING CURRENT_SCHEMAS CURRENT_CATALOG CURRENT_ROLE PG_BACKEND_PID
        PG_POSTMASTER_START_TIME CLOCK_TIMESTAMP STATEMENT_TIMESTAMP TRANSACTION_TIMESTAMP TIMEOFDAY TO_REGCLASS
        TO_REGTYPE TO_REGPROC HAS_TABLE_PRIVILEGE HAS_SCHEMA_PRIVILEGE HAS_COLUMN_PRIVILEGE HAS_DATABASE_PRIVILEGE
        PG_TABLE_IS_VISIBLE PG_GET_VIEWDEF PG_GET_INDEXDEF PG_GET_CONSTRAINTDEF PG_GET_FUNCTIONDEF PG_GET_EXPR
        PG_GET_USERBYID PG_GET_SERIAL_SEQUENCE OBJ_DESCRIPTION COL_DESCRIPTION SHOBJ_DESCRIPTION PG_RELATION_SIZE
        PG_TABLE_SIZE PG_INDEXES_SIZE PG_TOTAL_RELATION_SIZE PG_DATABASE_SIZE PG_SIZE_PRETTY PG_ENCODING_TO_CHAR
        PG_CLIENT_ENCODING QUOTE_IDENT QUOTE_LITERAL QUOTE_NULLABLE ARRAY_LENGTH ARRAY_UPPER ARRAY_LOWER
        ARRAY_TO_STRING STRING_TO_ARRAY ARRAY_POSITION ARRAY_REMOVE ARRAY_APPEND CARDINALITY REGEXP_SPLIT_TO_TABLE
        REGEXP_SPLIT_TO_ARRAY JSON_EACH JSON_EACH_TEXT JSONB_EACH JSONB_EACH_TEXT JSON_ARRAY_ELEMENTS
        JSON_ARRAY_ELEMENTS_TEXT JSONB_ARRAY_ELEMENTS JSONB_ARRAY_ELEMENTS_TEXT JSON_OBJECT_KEYS JSONB_OBJECT_KEYS
        JSON_TYPEOF JSONB_TYPEOF JSON_AGG JSONB_AGG JSON_OBJECT_AGG JSONB_OBJECT_AGG TO_JSON TO_JSONB ROW_TO_JSON
        JSONB_BUILD_OBJECT JSON_BUILD_ARRAY JSONB_BUILD_ARRAY JSONB_PRETTY JSONB_PATH_QUERY JSONB_SET
        JSON_ARRAY_LENGTH JSONB_ARRAY_LENGTH JSONB_STRIP_NULLS JSON_POPULATE_RECORD BOOL_AND BOOL_OR EVERY
        ENCODE DECODE CONVERT_FROM CONVERT_TO SHA224 SHA256 SHA384 SHA512 DIGEST STRPOS SUBSTR
        DATE_TRUNC JUSTIFY_HOURS JUSTIFY_INTERVAL ISFINITE TO_TIMESTAMP NUMNONNULLS NUMNULLS SCALE
        INET_SERVER_PORT VERSION""".split()
    ),
    "mysql": frozenset(
        """DATABASE SCHEMA CURRENT_USER USER SESSION_USER SYSTEM_USER CONNECTION_ID VERSION FOUND_ROWS ROW_COUNT
        LAST_INSERT_ID IFNULL IF JSON_EXTRACT JSON_UNQUOTE JSON_KEYS JSON_LENGTH JSON_TYPE JSON_VALID JSON_CONTAINS
        JSON_CONTAINS_PATH JSON_SEARCH JSON_QUOTE JSON_DEPTH JSON_ARRAYAGG JSON_OBJECTAGG JSON_TABLE JSON_VALUE
        JSON_OVERLAPS JSON_PRETTY JSON_COMPACT JSON_DETAILED JSON_QUERY JSON_EXISTS DATE_FORMAT TIME_FORMAT
        GET_FORMAT CURDATE CURTIME SYSDATE UTC_DATE UTC_TIME UTC_TIMESTAMP PERIOD_ADD PERIOD_DIFF TO_DAYS
        FROM_DAYS TO_SECONDS SEC_TO_TIME TIME_TO_SEC MAKEDATE MAKETIME MICROSECOND YEARWEEK INET_ATON INET_NTOA
        INET6_ATON INET6_NTOA IS_IPV4 IS_IPV6 UUID UUID_SHORT BIT_COUNT FORMAT CHARSET COLLATION COERCIBILITY
        SUBSTRING_INDEX EXPORT_SET MAKE_SET ORD QUOTE SOUNDS_LIKE TO_BASE64 FROM_BASE64 COMPRESS UNCOMPRESS
        UNCOMPRESSED_LENGTH REGEXP_INSTR REGEXP_LIKE NATURAL_SORT_KEY SFORMAT""".split()
    ),
}
DIALECT_NAMES["postgresql"] = DIALECT_NAMES["postgres"]
DIALECT_NAMES["mariadb"] = DIALECT_NAMES["mysql"]

#: operators that sqlglot models as functions (AND, OR, ...): not calls
_OPERATORS = (exp.Binary, exp.Unary, exp.Connector)

_EXECUTABLE_COMMENT = re.compile(r"/\*[!]|/\*M!", re.IGNORECASE)


class SQLRefused(InputError):
    """The statement was refused before reaching the database."""


def _depth(sql: str) -> int:
    depth = deepest = 0
    for ch in sql:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()


def _pure(node: exp.Func, extra: frozenset[str]) -> bool:
    if isinstance(node, exp.Anonymous):
        return function_name(node) in PURE_NAMES or function_name(node) in extra
    return (
        isinstance(node, (exp.AggFunc, *_PURE_CLASSES))
        or function_name(node) in PURE_NAMES
        or function_name(node) in extra
        or type(node).__name__.upper() in extra
    )


def _qualifier(node: exp.Expr) -> str | None:
    """The schema a function call is qualified with (``evil.lower(x)``: ``EVIL``), or None."""
    parent = node.parent
    if isinstance(node, exp.Func) and isinstance(parent, exp.Dot) and parent.expression is node:
        return parent.this.sql().strip('"`').upper()
    return None


def _builtin_schema(qualifier: str, dialect: str | None) -> bool:
    """PostgreSQL's built-ins live in ``pg_catalog``; a call qualified with it is the built-in."""
    return qualifier == "PG_CATALOG" and (dialect or "") in ("postgres", "postgresql")


def check_read_only(sql: str, dialect: str | None = None, allow_functions: frozenset[str] = frozenset()) -> exp.Expr:
    """Return the parsed query, or raise ``SQLRefused`` saying why it is not a single pure read query."""
    if not isinstance(sql, str):
        raise SQLRefused(f"a SQL statement must be text, got {type(sql).__name__}")
    if len(sql) > MAX_CHARS:
        raise SQLRefused(f"the statement is {len(sql)} characters long; at most {MAX_CHARS} are accepted")
    if _EXECUTABLE_COMMENT.search(sql):
        raise SQLRefused("the statement holds a MySQL executable comment (/*! ... */), which the server would run")
    if _depth(sql) > MAX_DEPTH:
        raise SQLRefused(f"the statement nests brackets deeper than {MAX_DEPTH} levels; simplify it")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError as e:
        raise SQLRefused(f"could not parse the statement, so it was not run: {e}") from None
    except RecursionError:
        raise SQLRefused("the statement is nested too deeply to check; simplify it") from None
    if len(statements) != 1:
        raise SQLRefused(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _READ_ROOTS):
        raise SQLRefused(f"only read queries are allowed in read-only mode, got {tree.key.upper()}")
    extra = frozenset(name.upper() for name in allow_functions) | DIALECT_NAMES.get(dialect or "", frozenset())
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            raise SQLRefused(f"the query contains a {node.key.upper()}, which writes; refused in read-only mode")
        qualifier = _qualifier(node)
        if isinstance(node, exp.Func) and qualifier is not None and not _builtin_schema(qualifier, dialect):
            name = f"{qualifier}.{function_name(node)}"
            if name in extra:
                continue
            raise SQLRefused(
                f"function {name} is called through a schema, so it may be a user's function that writes, not the "
                f"built-in; if it is pure, allow it with SQLDatabase(..., allow_functions={{{name!r}}})"
            )
        if isinstance(node, exp.Func) and not isinstance(node, _OPERATORS) and not _pure(node, extra):
            name = function_name(node)
            raise SQLRefused(
                f"function {name} is not on the read-only allow-list (functions can write, sleep or read files); "
                f"if it is pure, allow it with SQLDatabase(..., allow_functions={{{name!r}}})"
            )
    return tree
