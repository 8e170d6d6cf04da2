"""Text tables in every Unicode encoding, with and without a byte-order mark, and given the wrong
``--encoding``: each file is decoded as what it is or refused by name, never read as something else.

The issue's case: a UTF-16 CSV of 40 rows read as one row of garbage, the job "succeeding". Each run here
checks the rows and cells that come back, and that the output keeps the input's encoding."""

import codecs

import pytest

from compound.cli.table_job import run_file_job
from compound.tables.io import TableError, open_table

ROWS = [(f"r{i:02d}", f"héllo wörld {i} ☃") for i in range(40)]
TEXT = "id,text\n" + "".join(f"{a},{b}\n" for a, b in ROWS)

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def spec(tmp_path, **extra):
    return {
        "op": "map",
        "input": str(tmp_path / "in.csv"),
        "out": str(tmp_path / "out.csv"),
        "column": "out",
        "instruction": "summarise",
        "model": "relio-fake",
        "input_columns": ["id"],
        **extra,
    }


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_unicode_encoding_is_read_whole_without_being_told(tmp_path, relio_fake, encoding):
    (tmp_path / "in.csv").write_bytes(TEXT.encode(encoding))
    result, out = run_file_job(spec(tmp_path), progress=False)
    assert result.rows == 40
    assert list(result.df["text"]) == [b for _, b in ROWS] and list(result.df["id"]) == [a for a, _ in ROWS]
    raw = out.read_bytes()
    back, _ = open_table(out)
    assert list(back["text"]) == [b for _, b in ROWS] and list(back["out"]) == [f"R({a})" for a, _ in ROWS]
    assert len(raw) >= len(TEXT.encode(encoding))  # the output is in the input's (wide) encoding, not UTF-8


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_the_right_family_given_explicitly_reads_the_file(tmp_path, encoding):
    (tmp_path / "in.csv").write_bytes(TEXT.encode(encoding))
    family = "utf-32" if "32" in encoding else "utf-16"
    df, _ = open_table(tmp_path / "in.csv", encoding=family)
    assert len(df) == 40 and df["text"].iloc[39] == ROWS[39][1] and list(df.columns) == ["id", "text"]


WRONG = [
    ("utf-16", "utf-8", "byte-order mark"),
    ("utf-16", "latin-1", "byte-order mark"),
    ("utf-16", "cp1252", "byte-order mark"),
    ("utf-32", "utf-16", "byte-order mark"),
    ("utf-8-sig", "latin-1", "byte-order mark"),
    ("utf-8-sig", "utf-16", "byte-order mark"),
    ("utf-16-le", "latin-1", "NUL"),
    ("utf-16-be", "utf-16-le", "line breaks"),
    ("utf-32-be", "utf-16", "line breaks"),
    ("utf-32-le", "utf-16-le", "NUL"),
    ("utf-8", "utf-16", "line breaks"),
    ("utf-8", "utf-16-le", "line breaks"),
    ("utf-8", "latin-1", "UTF-8"),
    ("utf-8", "cp1252", "UTF-8"),
    ("utf-8", "utf-32", "not valid utf-32"),
]


@pytest.mark.parametrize("actual,given,why", WRONG, ids=[f"{a} read as {g}" for a, g, _ in WRONG])
def test_a_file_given_the_wrong_encoding_is_refused_by_name(tmp_path, relio_fake, actual, given, why):
    (tmp_path / "in.csv").write_bytes(TEXT.encode(actual))
    with pytest.raises(TableError, match="in.csv") as caught:
        run_file_job(spec(tmp_path, encoding=given), progress=False)
    assert why.lower() in str(caught.value).lower() and "--encoding" in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_the_issues_case_a_bomless_utf16_file_is_not_one_garbage_row(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_bytes(TEXT.encode("utf-16-le"))  # Excel's "Unicode text" without its mark
    result, _ = run_file_job(spec(tmp_path), progress=False)
    assert result.rows == 40 and result.computed == 40


def test_latin1_bytes_are_refused_as_utf8_and_read_with_encoding(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_bytes("id,text\nr1,café\n".encode("latin-1"))
    with pytest.raises(TableError, match="line 2 is not valid utf-8"):
        open_table(tmp_path / "in.csv")
    df, source = open_table(tmp_path / "in.csv", encoding="latin-1")
    assert df["text"].iloc[0] == "café" and source.text.encoding == "latin-1"


def test_a_utf16_file_with_an_odd_byte_cut_off_is_refused(tmp_path):
    (tmp_path / "in.csv").write_bytes(TEXT.encode("utf-16")[:-1])
    with pytest.raises(TableError, match="not valid utf-16"):
        open_table(tmp_path / "in.csv")


def test_an_unknown_encoding_is_named(tmp_path):
    (tmp_path / "in.csv").write_bytes(TEXT.encode())
    with pytest.raises(TableError, match="unknown encoding 'klingon'"):
        open_table(tmp_path / "in.csv", encoding="klingon")


@pytest.mark.parametrize("name", ["in.parquet", "in.xlsx"])
def test_encoding_on_a_binary_format_is_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    with pytest.raises(TableError, match="--encoding applies to CSV and TSV"):
        open_table(tmp_path / name, encoding="utf-16")


def test_a_bom_in_the_middle_is_data_not_a_mark(tmp_path):
    (tmp_path / "in.csv").write_bytes(("id,text\nr1,a" + "\ufeff" + "b\n").encode("utf-8"))
    df, _ = open_table(tmp_path / "in.csv")
    assert df["text"].iloc[0] == "a\ufeffb"


def test_cli_reads_a_utf16_file_and_refuses_a_wrong_encoding(tmp_path, relio_cli, relio_clean_error):
    (tmp_path / "in.csv").write_bytes(codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"))
    args = ["table", "map", "in.csv", "--column", "out", "--instruction", "s", "--model", "relio-fake"]
    proc = relio_cli(*args, "--input-columns", "id", "--out", "a.csv")
    assert proc.returncode == 0, proc.stderr
    assert "40 rows" in proc.stdout
    relio_clean_error(relio_cli(*args, "--out", "b.csv", "--encoding", "cp1252"), "byte-order mark", code=1)
