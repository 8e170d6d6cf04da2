"""Parquet files with every Arrow type a Parquet file can hold, through ``compound table`` jobs: each column
the job does not write comes back with its type and values unchanged, or the file is refused when it is
read, before any row is computed (never an ArrowTypeError at the write, never a silently changed type).

The issue's case: nested columns (lists, structs, maps) made the job compute every row and then fail at
the write, or come back with other types."""

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compound.cli.table_job import run_file_job
from compound.tables.io import TableError, open_table, write_table

N = 3
IDS = pa.array(["a", "b", "c"])
UTC = dt.UTC

COLUMNS = {
    "list<int32>": pa.array([[1, 2], [], None], pa.list_(pa.int32())),
    "large_list<large_string>": pa.array([["x"], ["y", "z"], []], pa.large_list(pa.large_string())),
    "fixed_size_list": pa.array([[1, 2], [3, 4], [5, 6]], pa.list_(pa.int16(), 2)),
    "struct": pa.array(
        [{"a": 1, "b": "x"}, None, {"a": 3, "b": None}], pa.struct([("a", pa.int8()), ("b", pa.string())])
    ),
    "map<string,int64>": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
    "map of lists": pa.array([[("k", [1, 2])], [], None], pa.map_(pa.string(), pa.list_(pa.int64()))),
    "list<struct<list>>": pa.array([[{"a": [1]}], [], None], pa.list_(pa.struct([("a", pa.list_(pa.int64()))]))),
    "dictionary<string>": pa.array(["u", "v", "u"]).dictionary_encode(),
    "decimal128(10,2)": pa.array([decimal.Decimal("1.23"), None, decimal.Decimal("-9.99")], pa.decimal128(10, 2)),
    "decimal256(40,1)": pa.array([decimal.Decimal("1.5")] * N, pa.decimal256(40, 1)),
    "timestamp[us, tz=Europe/Paris]": pa.array(
        [dt.datetime(2024, 1, 1, tzinfo=UTC)] * N, pa.timestamp("us", "Europe/Paris")
    ),
    "timestamp[ms]": pa.array([0, 1, 2], pa.timestamp("ms")),
    "timestamp year 3000": pa.array([dt.datetime(3000, 1, 1)] * N, pa.timestamp("us")),
    "timestamp[ns]": pa.array([dt.datetime(2000, 1, 1)] * N, pa.timestamp("ns")),
    "date32": pa.array([dt.date(2024, 1, 1)] * N, pa.date32()),
    "time64[us]": pa.array([dt.time(1, 2, 3)] * N, pa.time64("us")),
    "duration[s]": pa.array([1, 2, 3], pa.duration("s")),
    "binary": pa.array([b"\x00\xff", b"", None], pa.binary()),
    "large_binary": pa.array([b"a", b"b", None], pa.large_binary()),
    "fixed_size_binary": pa.array([b"ab", b"cd", b"ef"], pa.binary(2)),
    "halffloat": pa.array(np.array([1, 2, 3], dtype=np.float16)),
    "uint64 above int64": pa.array([2**63 + 1, 0, 1], pa.uint64()),
    "int8 with nulls": pa.array([1, None, 3], pa.int8()),
    "bool with nulls": pa.array([True, None, False]),
    "null": pa.array([None] * N, pa.null()),
    "string_view": pa.array(["a", "b", None], pa.string_view()),
    "float with NaN": pa.array([float("nan"), 2.0, 1.0]),
    "float with null": pa.array([None, 2.0, 1.0]),
    "struct with a null field": pa.array([None, {"x": None}, {"x": 1.0}], pa.struct([("x", pa.float64())])),
}


def spec(tmp_path, out="out.parquet", **extra):
    return {
        "op": "map",
        "input": str(tmp_path / "in.parquet"),
        "out": str(tmp_path / out),
        "column": "answer",
        "instruction": "summarise",
        "model": "relio-fake",
        "input_columns": ["id"],
        **extra,
    }


@pytest.mark.parametrize("name", COLUMNS)
def test_each_arrow_type_comes_back_unchanged_through_a_job(tmp_path, relio_fake, name):
    source = pa.table({"id": IDS, "col": COLUMNS[name]}, metadata={b"owner": b"me"})
    pq.write_table(source, tmp_path / "in.parquet")
    original = pq.read_table(tmp_path / "in.parquet")  # what Parquet itself gives back
    result, out = run_file_job(spec(tmp_path), progress=False)
    back = pq.read_table(out)
    assert back.schema.field("col").type == original.schema.field("col").type
    assert back.column("col").equals(original.column("col")) or name == "float with NaN"
    assert back.column("answer").to_pylist() == ["R(a)", "R(b)", "R(c)"]
    assert back.schema.metadata.get(b"owner") == b"me"


def test_nan_and_null_stay_apart(tmp_path, relio_fake):
    pq.write_table(pa.table({"id": IDS, "col": pa.array([float("nan"), 2.0, 1.0])}), tmp_path / "in.parquet")
    _, out = run_file_job(spec(tmp_path), progress=False)
    values = pq.read_table(out).column("col")
    assert values.null_count == 0 and np.isnan(values.to_pylist()[0])


REFUSED = {
    "NaN and null in one float column": pa.array([float("nan"), None, 1.0]),
    "NaN inside a list": pa.array([[float("nan")], [None], []]),
}


@pytest.mark.parametrize("name", REFUSED)
def test_a_column_that_cannot_round_trip_is_refused_before_any_row(tmp_path, relio_fake, name):
    pq.write_table(pa.table({"id": IDS, "col": REFUSED[name]}), tmp_path / "in.parquet")
    with pytest.raises(TableError, match="column 'col'") as caught:
        run_file_job(spec(tmp_path), progress=False)
    assert "would not be written back unchanged" in str(caught.value)
    assert relio_fake.requests == [] and not (tmp_path / "out.parquet").exists()


def test_a_filter_keeps_nested_types_for_the_rows_it_keeps(tmp_path, relio_fake):
    table = pa.table(
        {"id": IDS, "keep": ["yes", "no", "yes"], "col": COLUMNS["map<string,int64>"], "s": COLUMNS["struct"]}
    )
    pq.write_table(table, tmp_path / "in.parquet")
    _, out = run_file_job(
        {**spec(tmp_path), "op": "filter", "condition": "keep?", "input_columns": ["keep"]}, progress=False
    )
    back = pq.read_table(out)
    assert back.column("id").to_pylist() == ["a", "c"]
    assert back.schema.field("col").type == table.schema.field("col").type
    assert back.column("s").to_pylist() == [{"a": 1, "b": "x"}, {"a": 3, "b": None}]


def test_impute_keeps_the_column_type_when_its_values_fit(tmp_path, relio_fake):
    pq.write_table(
        pa.table({"id": IDS, "city": pa.array(["Paris", None, "Rome"]).dictionary_encode()}), tmp_path / "in.parquet"
    )
    _, out = run_file_job({**spec(tmp_path), "op": "impute", "column": "city"}, progress=False)
    back = pq.read_table(out)
    assert pa.types.is_dictionary(back.schema.field("city").type) and back.column("city").null_count == 0


def test_a_parquet_output_of_a_csv_job_gets_plain_types(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("id,n\na,1\nb,2\n")
    _, out = run_file_job({**spec(tmp_path), "input": str(tmp_path / "in.csv")}, progress=False)
    back = pq.read_table(out)
    assert back.column("n").to_pylist() == ["1", "2"] and back.column("answer").to_pylist() == ["R(a)", "R(b)"]


def test_a_duplicate_column_name_is_refused(tmp_path):
    table = pa.Table.from_arrays([IDS, IDS], names=["id", "id"])
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.raises(TableError, match="appears twice"):
        open_table(tmp_path / "in.parquet")


def test_write_table_without_a_source_infers_types(tmp_path):
    import pandas as pd

    path = write_table(pd.DataFrame({"a": [[1, 2], [3]], "b": [{"x": 1}, {"x": 2}]}), tmp_path / "t.parquet")
    back = pq.read_table(path)
    assert pa.types.is_list(back.schema.field("a").type) and pa.types.is_struct(back.schema.field("b").type)
