"""Reading and writing tables (CSV, Excel, Parquet), keeping columns and their order. Bad files get an
error that names the file and, where it can, the row or column. Writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError

READERS = {".csv": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel", ".parquet": "parquet", ".pq": "parquet"}


class TableError(ConfigurationError):
    """A table file or its contents cannot be used; the message names the file, row or column."""


def table_format(path: Path) -> str:
    fmt = READERS.get(path.suffix.lower())
    if fmt is None:
        raise TableError(f"{path}: unknown table format {path.suffix!r}; use one of {', '.join(sorted(READERS))}")
    return fmt


def read_table(path: str | Path, sheet: str | int = 0) -> Any:
    """Read a table into a DataFrame. Raises ``TableError`` for a missing, unreadable or empty file."""
    import pandas as pd

    path = Path(path)
    fmt = table_format(path)
    if not path.exists():
        raise TableError(f"{path}: no such file")
    try:
        if fmt == "csv":
            df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        elif fmt == "excel":
            df = pd.read_excel(path, sheet_name=sheet, engine="openpyxl")
        else:
            df = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise TableError(f"{path}: the file is empty") from None
    except ImportError as e:
        raise TableError(
            f"{path}: reading {fmt} needs an extra package: pip install 'compound[tables]' ({e})"
        ) from None
    except Exception as e:
        raise TableError(f"{path}: cannot read it as {fmt}: {type(e).__name__}: {e}") from None
    if df.shape[0] == 0:
        raise TableError(f"{path}: the table has no rows")
    return df


def write_table(df: Any, path: str | Path) -> Path:
    """Write atomically (a temporary file, then a rename), so a crash never leaves half a file."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if fmt == "csv":
            df.to_csv(tmp, index=False, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        elif fmt == "excel":
            df.to_excel(tmp, index=False, engine="openpyxl")
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def require_columns(df: Any, columns: list[str], source: str = "the table") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TableError(
            f"{source}: no column {', '.join(map(repr, missing))}; the columns are: {', '.join(map(str, df.columns))}"
        )


def check_column_types(df: Any, column: str, source: str = "the table") -> str:
    """Say whether a column is numeric or text; mixed numbers and words are an error naming the first odd row."""
    import pandas as pd

    values = df[column].dropna()
    if values.empty or pd.api.types.is_numeric_dtype(values):
        return "number" if pd.api.types.is_numeric_dtype(values) and not values.empty else "text"
    as_num: Any = pd.to_numeric(values, errors="coerce")  # a Series here (pandas types every input kind)
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
