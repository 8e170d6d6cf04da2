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
        or function_name(node) in extra
        or type(node).__name__.upper() in extra
    )


def check_read_only(
    sql: str, dialect: str | None = None, allow_functions: frozenset[str] = frozenset()
) -> exp.Expression:
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
    except sqlglot.errors.SqlglotError as e:
        raise SQLRefused(f"could not parse the statement, so it was not run: {e}") from None
    except RecursionError:
        raise SQLRefused("the statement is nested too deeply to check; simplify it") from None
    if len(statements) != 1:
        raise SQLRefused(f"exactly one statement is allowed, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _READ_ROOTS):
        raise SQLRefused(f"only read queries are allowed in read-only mode, got {tree.key.upper()}")
    extra = frozenset(name.upper() for name in allow_functions)
    for node in tree.walk():
        if isinstance(node, _WRITE_NODES):
            raise SQLRefused(f"the query contains a {node.key.upper()}, which writes; refused in read-only mode")
        if isinstance(node, exp.Func) and not isinstance(node, _OPERATORS) and not _pure(node, extra):
            name = function_name(node)
            raise SQLRefused(
                f"function {name} is not on the read-only allow-list (functions can write, sleep or read files); "
                f"if it is pure, allow it with SQLDatabase(..., allow_functions={{{name!r}}})"
            )
    return tree
