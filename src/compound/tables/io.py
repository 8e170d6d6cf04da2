"""Reading and writing table files (CSV, TSV, Excel, Parquet) as a faithful round trip.

Guarantees:

- Columns a job does not write come back as they were: CSV and TSV cells are read as text (see
  ``textfile``), workbook cells as their stored values (see ``workbook``), Parquet columns with their own
  Arrow types, nested ones included, or the file is refused before any row is computed (see ``arrowfile``). Types
  are inferred only where an operator needs them (``check_column_types``, for impute).
- A bad file is refused with an error that names the file and the line or cell, and says what to do
  (JSON Lines too: ``read_json_lines``).
- ``check_output`` checks the output before any row is computed: a known format whose engine is installed,
  a writable directory, not the input itself (symlinks and hard links included), and no sheet of a
  multi-sheet workbook silently dropped.
- Values a job writes are neutralised against formula injection in CSV, TSV and Excel outputs (OWASP):
  text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'``. Columns the
  job does not write are left byte for byte in CSV; in Excel every text cell is a string cell, never a formula.
- Writes are atomic (a temporary file in the output's folder, then a rename); the temporary file is removed
  on failure, and ones left by a killed process are removed by the next write to the same output.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError
from compound.program.rows import is_missing

READERS = {".csv": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel", ".parquet": "parquet", ".pq": "parquet"}
ENGINES = {"excel": ("openpyxl", "openpyxl"), "parquet": ("pyarrow", "pyarrow")}
#: the first characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class TableError(ConfigurationError):
    """A table file or its contents cannot be used; the message names the file, row or column."""


@dataclass
class TableFile:
    """Where a table came from and how it was spelled, so that its output is spelled the same way."""

    path: Path
    format: str
    text: Any = None  # textfile.TextFormat for CSV and TSV
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    parquet: Any = None  # arrowfile.ParquetLayout of a Parquet file, so that its columns are written back unchanged


def table_format(path: Path) -> str:
    fmt = READERS.get(Path(path).suffix.lower())
    if fmt is None:
        raise TableError(f"{path}: unknown table format {Path(path).suffix!r}; use one of {', '.join(sorted(READERS))}")
    return fmt


def _engine(fmt: str, path: Path) -> None:
    if fmt in ENGINES and importlib.util.find_spec(ENGINES[fmt][0]) is None:
        raise TableError(
            f"{path}: {fmt} files need the {ENGINES[fmt][1]} package: pip install 'compound[tables]' "
            f"(or write to .csv instead)"
        )


def open_table(
    path: str | Path, *, sheet: str | None = None, encoding: str | None = None, delimiter: str | None = None
) -> tuple[Any, TableFile]:
    """Read a table and how it is spelled. Raises ``TableError`` for a missing, unreadable or malformed file."""
    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise TableError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise TableError(f"{path}: is a directory; give a table file")
    if fmt != "excel" and sheet is not None:
        raise TableError(f"{path}: --sheet applies to Excel workbooks only")
    if fmt != "csv" and (encoding is not None or delimiter is not None):
        option = "--encoding" if encoding is not None else "--delimiter"
        raise TableError(f"{path}: {option} applies to CSV and TSV files only; drop it for a {fmt} file")
    _engine(fmt, path)
    if fmt == "csv":
        from compound.tables.textfile import read_text_table

        try:
            df, text = read_text_table(path, encoding, delimiter)
        except LookupError:
            raise TableError(f"unknown encoding {encoding!r}; use e.g. utf-8, cp1252, latin-1 or utf-16") from None
        return df, TableFile(path, fmt, text=text)
    if fmt == "excel":
        from compound.tables.workbook import read_sheet

        df, name, names = read_sheet(path, sheet)
        return df, TableFile(path, fmt, sheet=name, sheets=names)
    from compound.tables.arrowfile import read_parquet

    df, layout = read_parquet(path)
    return df, TableFile(path, fmt, parquet=layout)


def read_table(path: str | Path, sheet: str | None = None, **options: Any) -> Any:
    """Read a table into a DataFrame (CSV cells as text; see ``open_table``)."""
    return open_table(path, sheet=sheet, **options)[0]


#: what a line of a JSON Lines file must look like, as the errors say
JSON_LINE = 'JSON Lines: one JSON object per line, e.g. {"text": "...", "label": "..."}'
ARRAY = " (one JSON array? write each element on a line of its own)"


def read_json_lines(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of a JSON Lines file (numbered from 1). Raises
    ``TableError`` naming the file and the first bad line for a missing file, text that is not UTF-8, or a
    line that is not one JSON object; an empty file gives no rows (the caller decides whether that is bad)."""
    import json

    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise TableError(f"{path}: is a directory; give a JSON Lines file ({JSON_LINE})")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TableError(f"{path} line {line}: not UTF-8 text; save the file as UTF-8") from None
    out = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 may be inside a JSON string
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            hint = ARRAY if line.lstrip().startswith("[") else ""
            raise TableError(f"{path} line {n}: not JSON ({e.msg}){hint}; the file must have {JSON_LINE}") from None
        if not isinstance(value, dict):
            kind = type(value).__name__
            hint = ARRAY if isinstance(value, list) else ""
            raise TableError(f"{path} line {n}: a JSON {kind}, not an object{hint}; the file must have {JSON_LINE}")
        out.append((n, value))
    return out


def read_rows(path: str | Path) -> Any:
    """Labelled rows from a file: JSON Lines (``.jsonl``/``.ndjson``: one object a line) or any table
    ``read_table`` reads. Raises ``TableError`` naming the file."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return read_table(path)
    return pd.DataFrame([row for _, row in read_json_lines(path)])


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(out: str | Path, source: TableFile | None = None, *, sheet_chosen: bool = False) -> Path:
    """Refuse an output that cannot be written, before any work is done; returns the output path."""
    out = Path(out)
    fmt = table_format(out)
    _engine(fmt, out)
    if source is not None and _same_file(out, source.path):
        raise TableError(f"--out {out} is the input file; a job never overwrites its input: give another --out")
    if out.is_dir():
        raise TableError(f"--out {out} is a directory; give a file name such as {out / 'result.csv'}")
    if source is not None and len(source.sheets) > 1 and fmt != "excel" and not sheet_chosen:
        raise TableError(
            f"{source.path} has {len(source.sheets)} sheets ({', '.join(source.sheets)}) but {out.suffix} holds "
            f"one: write to .xlsx to keep them all, or pick the sheet to process with --sheet"
        )
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise TableError(f"--out {out}: cannot write in {folder}; pick a folder you can write to")
    return out


def neutralise(value: Any) -> Any:
    """OWASP's rule against formula injection: text a spreadsheet would run as a formula gets a leading ``'``."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def write_table(
    df: Any,
    path: str | Path,
    *,
    source: TableFile | None = None,
    written: dict[str, Any] | None = None,
) -> Path:
    """Write atomically, in the source's spelling. ``written`` maps each column the job wrote to the row
    positions it wrote (0: the first row) (``None``: the whole column); those values are neutralised in CSV, TSV and Excel."""
    path = Path(path)
    fmt = table_format(path)
    _engine(fmt, path)
    if written and fmt != "parquet":
        df = df.copy()
        for column, rows in written.items():
            if column in df.columns:
                mask = [p in rows for p in range(len(df))] if rows is not None else [True] * len(df)
                df[column] = [neutralise(v) if m else v for v, m in zip(df[column], mask, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if fmt == "csv":
            from compound.tables.textfile import TextFormat, write_text_table

            text = source.text if source is not None and source.text is not None else TextFormat()
            if source is None or source.text is None:
                text = TextFormat(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            write_text_table(df, tmp, text)
        elif fmt == "excel":
            from compound.tables.workbook import write_sheet

            keep = source is not None and source.format == "excel" and source.path.exists()
            write_sheet(
                df,
                tmp,
                like=source.path if source is not None and keep else None,
                sheet=source.sheet if source else None,
            )
        else:
            from compound.tables.arrowfile import write_parquet

            write_parquet(df, tmp, source.parquet if source is not None else None, set(written or ()))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of this output left by a process that died (a kill -9 mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def require_columns(df: Any, columns: list[str], source: str = "the table") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TableError(
            f"{source}: no column {', '.join(map(repr, missing))}; the columns are: {', '.join(map(str, df.columns))}"
        )


#: in a column of numbers these say "no value" (numbers cannot be spelled so); in a text column they are text
NUMBER_MISSING = frozenset({"na", "n/a", "#n/a", "nan", "null", "none", "-", "?"})


def missing_cells(values: Any, kind: str) -> Any:
    """A boolean Series: the empty cells, and in a column of numbers also the cells spelled NA, null, nan..."""
    empty = values.map(is_missing)
    if kind == "number":
        empty |= values.map(lambda v: isinstance(v, str) and v.strip().lower() in NUMBER_MISSING)
    return empty


def check_column_types(df: Any, column: str, source: str = "the table") -> str:
    """Say whether a column is numeric or text; mixed numbers and words are an error naming the first odd row."""
    import pandas as pd

    values = df[column][~missing_cells(df[column], "number")]
    if values.empty or pd.api.types.is_numeric_dtype(values):
        return "number" if pd.api.types.is_numeric_dtype(values) and not values.empty else "text"
    as_num: Any = pd.to_numeric(values.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    numeric = as_num.notna()
    if numeric.all():
        return "number"
    if numeric.mean() >= 0.5:
        bad = values[~numeric].index[0]
        raise TableError(
            f"{source}: column {column!r} mixes numbers and text (row {bad + 2 if isinstance(bad, int) else bad} "
            f"holds {values[bad]!r}); fix that cell or make the column text"
        )
    return "text"
