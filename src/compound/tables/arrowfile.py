"""Parquet files as a faithful round trip of their Arrow types.

Guarantees:

- Every column of a Parquet file is written back with its own Arrow type and values (lists, structs, maps,
  dictionaries, decimals, timestamps with their unit and time zone, binary, ...), the file's metadata kept.
- A column that would not come back unchanged through a DataFrame is refused when the file is read, before
  any row is computed, naming the column and its type (and what to do), never found out at the write.
- Columns a job writes get the file's type where their values fit it, else the type of their values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compound.tables.io import TableError


@dataclass(frozen=True)
class ParquetLayout:
    """What writing a Parquet file's columns back unchanged needs: its schema, and the columns whose NaN
    values are values (a DataFrame shows NaN and null alike; in the others NaN stands for null)."""

    schema: Any
    nan_values: frozenset[str] = field(default_factory=frozenset)


def read_parquet(path: Path) -> tuple[Any, ParquetLayout]:
    """The file as a DataFrame and its layout; refuses a column that would not round-trip."""
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as f:
            table = f.read()
    except Exception as e:
        raise TableError(f"{path}: cannot read it as parquet: {type(e).__name__}: {e}") from None
    if table.num_rows == 0:
        raise TableError(f"{path}: the table has no rows")
    names = table.column_names
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise TableError(f"{path}: column {twice!r} appears twice; give each column its own name")
    try:
        df = table.to_pandas()
    except Exception:
        _refuse_column(path, table)
        raise
    return df, ParquetLayout(table.schema, frozenset(_check_round_trip(path, table, df)))


def _refuse_column(path: Path, table: Any) -> None:
    """Name the first column that a DataFrame cannot hold."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            column.to_pandas()
        except Exception as e:
            raise TableError(
                f"{path}: column {name!r} of type {column.type} cannot be read into a table ({type(e).__name__}: "
                f"{e}); convert that column (or drop it) before running a job on the file"
            ) from None


def _array(values: Any, type_: Any, nan_is_value: bool) -> Any:
    import pyarrow as pa

    return pa.array(values, type=type_, from_pandas=not nan_is_value)


def _same(a: Any, b: Any) -> bool:
    """Equal arrays, NaN equal to NaN in a float column (Arrow's ``equals`` says NaN != NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if a.equals(b):
        return True
    if not (pa.types.is_floating(a.type) and a.type == b.type and len(a) == len(b)):
        return False
    if not a.is_null().equals(b.is_null()):
        return False
    # by name: pyarrow generates these functions at import, so type checkers do not know them
    nan_a, nan_b = (pc.fill_null(pc.call_function("is_nan", [x]), False) for x in (a, b))
    if not nan_a.equals(nan_b):
        return False
    keep = pc.call_function("invert", [nan_a])
    return a.filter(keep).equals(b.filter(keep))


def _check_round_trip(path: Path, table: Any, df: Any) -> list[str]:
    """Each column converted back must equal the file's; returns the columns whose NaN are values."""
    nan_values = []
    for column in table.schema:
        original = table.column(column.name).combine_chunks()
        for nan_is_value in (False, True):
            try:
                if _same(_array(df[column.name], column.type, nan_is_value), original):
                    nan_values += [column.name] if nan_is_value else []
                    break
            except Exception:
                pass
        else:
            raise TableError(
                f"{path}: column {column.name!r} of type {column.type} would not be written back unchanged "
                "(a float column holding both NaN and null, say); convert it to a plainer type (text, numbers, "
                "lists or structs of them) or drop it, then run the job again"
            )
    return nan_values


def write_parquet(df: Any, path: Path, layout: ParquetLayout | None, written: set[str]) -> None:
    """Write ``df`` with the source's type for each of its columns; a column the job wrote keeps the
    source's type only where its values fit it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = layout.schema if layout is not None else None
    source = {f.name: f for f in schema} if schema is not None else {}
    arrays, fields = [], []
    for name in df.columns:
        values = df[name]
        field = source.get(name)
        array = None
        if field is not None:
            try:
                array = _array(values, field.type, name in layout.nan_values if layout else False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
                if name not in written:
                    raise
        if array is None:
            array = pa.array(values, from_pandas=True)
            field = pa.field(str(name), array.type)
        arrays.append(array)
        fields.append(field)
    metadata = dict(schema.metadata or {}) if schema is not None else {}
    metadata.pop(b"pandas", None)  # it describes the source's index and dtypes, not this table's
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata or None))
    pq.write_table(table, path)
