"""Table files are a faithful round trip: hostile CSV, TSV and Excel files through ``compound table`` jobs.

Columns a job does not write come back byte for byte; a malformed file is refused naming the line and the
fix; the output is checked before any row is computed; values the job writes cannot become formulas."""

import codecs
import csv
import io
import os

import openpyxl
import pytest

from compound.cli.table_job import run_file_job
from compound.tables.io import TableError, open_table, write_table


def spec(tmp_path, name="in.csv", out="out.csv", **extra):
    return {
        "op": "map",
        "input": str(tmp_path / name),
        "out": str(tmp_path / out),
        "column": "out",
        "instruction": "summarise",
        "model": "relio-fake",
        "input_columns": ["id"],
        **extra,
    }


def run(tmp_path, content, name="in.csv", out="out.csv", **extra):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    result, written = run_file_job(spec(tmp_path, name, out, **extra), progress=False)
    return result, written


def cells(path, encoding="utf-8", delimiter=","):
    with open(path, encoding=encoding, newline="") as f:
        return list(csv.reader(f, delimiter=delimiter))


# values a pandas round trip used to rewrite or lose; each must come back exactly
PASS_THROUGH = [
    "00123",
    "NA",
    "1.10",
    "",
    "null",
    "None",
    "nan",
    "NaN",
    "N/A",
    "#N/A",
    " padded ",
    "trailing ",
    "1e5",
    "0x1F",
    "-0",
    "TRUE",
    "false",
    "2024-01-02",
    "1,234.50",
    '"quoted"',
    "multi\nline",
    "日本語",
    "émoji 🙂",
    "=SUM(A1:A3)",
    "+33 6 12 34 56 78",
    "1.0000000000000000001",
    "9007199254740993",
]


@pytest.mark.parametrize("value", PASS_THROUGH, ids=[repr(v) for v in PASS_THROUGH])
def test_columns_the_job_does_not_write_come_back_exactly(tmp_path, relio_fake, value):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerows([["id", "value", "country"], ["r1", value, "NA"], ["r2", "00042", value]])
    result, out = run(tmp_path, buf.getvalue())
    got = cells(out)
    assert got[0] == ["id", "value", "country", "out"]
    assert [r[:3] for r in got[1:]] == [["r1", value, "NA"], ["r2", "00042", value]]
    assert [r[3] for r in got[1:]] == ["R(r1)", "R(r2)"]
    if "\n" not in value and '"' not in value and "," not in value:  # unquoted in, unquoted out: same bytes
        assert out.read_text(encoding="utf-8").splitlines()[1].startswith(f"r1,{value},NA,")


def test_unquoted_comma_in_the_first_data_row_is_reported_not_turned_into_an_index(tmp_path, relio_fake):
    with pytest.raises(TableError, match=r"line 2 has 3.*quote the cells"):
        run(tmp_path, "id,text\nr1,hello, world\nr2,bye\n")
    assert not relio_fake.requests and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    "content,needle",
    [
        ("id,text\nr1,a\nr2\n", r"line 3 has 1"),
        ("id,text\nr1,a\nr2,b,c,d\n", r"line 3 has 4"),
        ("id,text\nr1\nr2\nr3\nr4\nr5\n", r"and 2 more rows"),
        ('id,text\nr1,"multi\nline"\nr2\n', r"line 4 has 1"),
        ("id,id\nr1,a\n", r"'id' appears twice \(columns 1 and 2\)"),
        ("id,text,\nr1,a,b\n", r"column 3 has no name"),
        ("", r"the file is empty"),
        ("   \n\n  \n", r"the file is empty"),
        ("id,text\n", r"header but no rows"),
        ("id,text", r"header but no rows"),
        ("id,text\n\n\n", r"header but no rows"),
        ("id;text\nr1;a,b\n", r"--delimiter ';'"),
        ("id,text\nr1,a\x00b\n", r"line 2 holds a NUL byte"),
    ],
    ids=[
        "short-row",
        "long-row",
        "many-bad-rows",
        "short-after-multiline",
        "duplicate-header",
        "unnamed-column",
        "empty",
        "blank",
        "header-only",
        "header-no-newline",
        "header-blank-lines",
        "semicolon-hint",
        "nul-byte",
    ],
)
def test_malformed_files_are_refused_naming_the_line_and_the_fix(tmp_path, relio_fake, content, needle):
    with pytest.raises(TableError, match=needle):
        run(tmp_path, content)
    assert not relio_fake.requests and not (tmp_path / "out.csv").exists()


ENCODINGS = [
    ("utf-8", b"", None),
    ("utf-8-sig", codecs.BOM_UTF8, None),
    ("utf-16", b"", None),
    ("cp1252", b"", "cp1252"),
    ("latin-1", b"", "latin-1"),
]


@pytest.mark.parametrize("encoding,bom,option", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_the_encoding_and_its_byte_order_mark_are_kept(tmp_path, relio_fake, encoding, bom, option):
    text = "id,name\r\nr1,Zoë\r\nr2,Ångström\r\n"
    raw = text.encode(encoding)
    run(tmp_path, raw, encoding=option)
    back = (tmp_path / "out.csv").read_bytes()
    assert back.startswith(raw[:2] if encoding == "utf-16" else bom)
    decoded = back.decode(encoding)
    assert decoded.splitlines()[1:] == ["r1,Zoë,R(r1)", "r2,Ångström,R(r2)"]


@pytest.mark.parametrize("raw", [b"id,name\nr1,caf\xe9\n", b"id,name\nr1,ok\nr2,\x81\x8d\n"], ids=["latin1", "cp"])
def test_undecodable_bytes_name_the_line_and_suggest_an_encoding(tmp_path, relio_fake, raw):
    with pytest.raises(TableError, match=r"line \d is not valid utf-8.*--encoding"):
        run(tmp_path, raw)


def test_an_unknown_encoding_is_refused(tmp_path, relio_fake):
    with pytest.raises(TableError, match="unknown encoding 'klingon'"):
        run(tmp_path, "id\nr1\n", encoding="klingon")


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_line_endings_are_kept(tmp_path, relio_fake, ending):
    run(tmp_path, ending.join(["id,v", "r1,a", "r2,b"]) + ending)
    assert (tmp_path / "out.csv").read_bytes().decode() == ending.join(["id,v,out", "r1,a,R(r1)", "r2,b,R(r2)"]) + (
        ending
    )


@pytest.mark.parametrize(
    "name,content,extra,delimiter",
    [
        ("in.tsv", "id\tv\nr1\ta,b\n", {}, "\t"),
        ("in.csv", "id;v\nr1;a,b\n", {"delimiter": ";"}, ";"),
        ("in.csv", "id|v\nr1|a\n", {"delimiter": "|"}, "|"),
    ],
    ids=["tsv", "semicolon", "pipe"],
)
def test_delimiters(tmp_path, relio_fake, name, content, extra, delimiter):
    out = "out" + os.path.splitext(name)[1]
    run(tmp_path, content, name=name, out=out, **extra)
    assert cells(tmp_path / out, delimiter=delimiter)[1] == ["r1", content.splitlines()[1].split(delimiter)[1], "R(r1)"]


def test_blank_lines_hold_no_data(tmp_path, relio_fake):
    run(tmp_path, "id,v\nr1,a\n\nr2,b\n\n")
    assert cells(tmp_path / "out.csv")[1:] == [["r1", "a", "R(r1)"], ["r2", "b", "R(r2)"]]


def test_in_a_one_column_file_a_blank_line_is_an_empty_cell(tmp_path, relio_fake):
    path = tmp_path / "in.csv"
    path.write_text("id\nr1\n\nr3\n")
    df, _ = open_table(path)
    assert df["id"].tolist() == ["r1", "", "r3"]


def test_huge_cells_wide_rows_and_unicode_headers(tmp_path, relio_fake):
    big = "x" * 1_000_000
    header = ["id", "名前", *[f"c{i}" for i in range(300)]]
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([header, ["r1", big, *map(str, range(300))]])
    run(tmp_path, buf.getvalue())
    got = cells(tmp_path / "out.csv")
    assert got[0] == [*header, "out"] and got[1][1] == big and got[1][-2] == "299"


# ---- the output is checked before any row is computed --------------------------------------------------------


def _same_as_input(tmp_path):
    return "in.csv"


def _symlink(tmp_path):
    (tmp_path / "link.csv").symlink_to(tmp_path / "in.csv")
    return "link.csv"


def _hardlink(tmp_path):
    os.link(tmp_path / "in.csv", tmp_path / "hard.csv")
    return "hard.csv"


def _dotted(tmp_path):
    (tmp_path / "sub").mkdir()
    return "sub/../in.csv"


@pytest.mark.parametrize("make", [_same_as_input, _symlink, _hardlink, _dotted], ids=lambda f: f.__name__[1:])
def test_out_equal_to_the_input_is_refused(tmp_path, relio_fake, make):
    original = "id,v\nr1,00123\n"
    (tmp_path / "in.csv").write_text(original)
    with pytest.raises(TableError, match="is the input file"):
        run_file_job(spec(tmp_path, out=make(tmp_path)), progress=False)
    assert (tmp_path / "in.csv").read_text() == original and not relio_fake.requests


@pytest.mark.parametrize(
    "out,needle",
    [
        ("result.json", "unknown table format"),
        ("result", "unknown table format"),
        ("adir.csv", "is a directory"),
        ("afile/out.csv", "cannot write in"),
    ],
)
def test_bad_outputs_are_refused_before_any_row_is_computed(tmp_path, relio_fake, out, needle):
    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "in.csv").write_text("id\nr1\n")
    with pytest.raises(TableError, match=needle):
        run_file_job(spec(tmp_path, out=out), progress=False)
    assert not relio_fake.requests


def test_a_missing_output_folder_is_created(tmp_path, relio_fake):
    run(tmp_path, "id\nr1\n", out="new/deeper/out.csv")
    assert cells(tmp_path / "new/deeper/out.csv") == [["id", "out"], ["r1", "R(r1)"]]


# ---- workbooks -------------------------------------------------------------------------------------------------


def workbook(path, sheets):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)


SHEETS = {"Data": [["id", "code", "n"], ["r1", "00123", 1.5], ["r2", "NA", 2]], "Notes": [["keep me"], [42]]}


def test_other_sheets_are_kept_in_an_xlsx_output(tmp_path, relio_fake):
    workbook(tmp_path / "in.xlsx", SHEETS)
    run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx"), progress=False)
    wb = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert wb.sheetnames == ["Data", "Notes"]
    assert [[c.value for c in r] for r in wb["Notes"].iter_rows()] == [["keep me"], [42]]
    rows = [[c.value for c in r] for r in wb["Data"].iter_rows()]
    assert rows == [["id", "code", "n", "out"], ["r1", "00123", 1.5, "R(r1)"], ["r2", "NA", 2, "R(r2)"]]


def test_a_multi_sheet_workbook_to_csv_is_refused_unless_a_sheet_is_chosen(tmp_path, relio_fake):
    workbook(tmp_path / "in.xlsx", SHEETS)
    with pytest.raises(TableError, match=r"has 2 sheets \(Data, Notes\).*--sheet"):
        run_file_job(spec(tmp_path, "in.xlsx", "out.csv"), progress=False)
    assert not relio_fake.requests
    run_file_job(spec(tmp_path, "in.xlsx", "notes.csv", sheet="Notes", input_columns=["keep me"]), progress=False)
    assert cells(tmp_path / "notes.csv") == [["keep me", "out"], ["42", "R(42)"]]


def test_an_unknown_sheet_is_named(tmp_path, relio_fake):
    workbook(tmp_path / "in.xlsx", SHEETS)
    with pytest.raises(TableError, match="no sheet 'Nope'; the sheets are: Data, Notes"):
        run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx", sheet="Nope"), progress=False)


def test_a_sheet_with_formulas_is_refused_rather_than_flattened(tmp_path, relio_fake):
    workbook(tmp_path / "in.xlsx", {"Data": [["id", "n", "twice"], ["r1", 2, "=B2*2"]]})
    with pytest.raises(TableError, match=r"holds formulas \(cell C2"):
        run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx"), progress=False)


@pytest.mark.parametrize(
    "sheet,needle",
    [
        ({"Data": [["id", "id"], ["r1", "r2"]]}, "appears twice"),
        ({"Data": [["id", None, "x"], ["r1", 1, 2]]}, "column 2 has no name"),
        ({"Data": [["id"], ["r1", "stray"]]}, "column 2 has no name"),
        ({"Data": [["id"]]}, "header row but no rows"),
        ({"Data": []}, "is empty"),
    ],
    ids=["duplicate-header", "unnamed", "stray-cell", "header-only", "empty"],
)
def test_malformed_sheets_are_refused(tmp_path, relio_fake, sheet, needle):
    workbook(tmp_path / "in.xlsx", sheet)
    with pytest.raises(TableError, match=needle):
        run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx"), progress=False)


def test_a_file_that_is_not_a_workbook(tmp_path, relio_fake):
    (tmp_path / "in.xlsx").write_text("id\nr1\n")
    with pytest.raises(TableError, match="cannot read it as excel"):
        run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx"), progress=False)


# ---- formula injection -----------------------------------------------------------------------------------------

DANGEROUS = ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(1)", "\tcmd", "\r=1"]


@pytest.mark.parametrize("reply", DANGEROUS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_values_the_job_writes_cannot_become_formulas(tmp_path, relio_fake, reply, fmt):
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows([["id", "reply"], ["r1", reply], ["r2", "plain"]])
    run(tmp_path, buf.getvalue(), out=f"out.{fmt}", input_columns=["id", "reply"])
    # the map's str column is asked for as plain text, whose value is the reply stripped: "\tcmd" arrives
    # as "cmd" (harmless), "\r=1" as "=1" (a formula unless neutralised)
    value = reply.strip()
    written = "'" + value if value[0] in "=+-@" else value
    if fmt == "csv":
        got = cells(tmp_path / "out.csv")
        assert got[1] == ["r1", reply, written] and got[2] == ["r2", "plain", "plain"]  # the input stays as it was
    else:
        ws = openpyxl.load_workbook(tmp_path / "out.xlsx")["Sheet1"]
        assert ws["C2"].value == written and ws["C2"].data_type == "s"
        reply = reply.replace("\r", "\n")  # XML stores a carriage return in text as a line feed
        assert ws["B2"].value == reply and ws["B2"].data_type == "s"  # passed through, as text, never a formula


@pytest.mark.parametrize("reply", DANGEROUS, ids=["eq", "plus", "minus", "at", "tab", "cr"])
def test_a_json_text_field_keeps_its_whitespace_and_is_neutralised_too(reply):
    from compound.tables.io import neutralise

    assert neutralise(reply) == "'" + reply and neutralise("plain") == "plain"


def test_imputed_cells_are_neutralised_and_the_others_kept(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("id,reply,label\nr1,=1+1,\nr2,x,=cmd\n")
    s = spec(tmp_path, op="impute", column="label", input_columns=["reply"])
    run_file_job(s, progress=False)
    got = cells(tmp_path / "out.csv")
    assert got[1] == ["r1", "=1+1", "'=cmd"] and got[2] == ["r2", "x", "=cmd"]  # the only label, neutralised


def test_parquet_keeps_its_types_and_is_not_prefixed(tmp_path, relio_fake):
    import pandas as pd

    pd.DataFrame({"id": ["r1"], "n": [1.10], "reply": ["=x"]}).to_parquet(tmp_path / "in.parquet")
    run_file_job(spec(tmp_path, "in.parquet", "out.parquet", input_columns=["id", "reply"]), progress=False)
    back = pd.read_parquet(tmp_path / "out.parquet")
    assert back["n"].tolist() == [1.10] and back["out"].tolist() == ["=x"]


# ---- types are inferred only where an operator needs them --------------------------------------------------------


@pytest.mark.parametrize("marker", ["", "NA", "null", "nan", "N/A", " "])
def test_impute_reads_numbers_only_in_its_own_column(tmp_path, relio_fake, marker):
    (tmp_path / "in.csv").write_text(f"id,zip,mass\nr1,00123,1.10\nr2,NA,{marker}\nr3,007,3.5\n")
    run_file_job(spec(tmp_path, op="impute", column="mass", input_columns=["id", "zip"]), progress=False)
    got = cells(tmp_path / "out.csv")
    assert [r[:2] for r in got[1:]] == [["r1", "00123"], ["r2", "NA"], ["r3", "007"]]
    assert got[1][2] == "1.10" and got[3][2] == "3.5"  # untouched cells keep their spelling
    assert float(got[2][2]) > 0 and len(relio_fake.requests) == 1  # only the one missing number was asked for


def test_in_a_text_column_NA_is_a_value_not_a_gap(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("id,country\nr1,NA\nr2,\nr3,FR\n")
    run_file_job(spec(tmp_path, op="impute", column="country", input_columns=["id"]), progress=False)
    assert [r[1] for r in cells(tmp_path / "out.csv")[1:]] == ["NA", "FR", "FR"]  # the fake picks the first label
    assert len(relio_fake.requests) == 1  # only the empty cell was asked for


def test_write_table_removes_temporaries_of_dead_processes(tmp_path):
    import pandas as pd

    stale = tmp_path / ".out.csv.tmp-999999999"
    stale.write_text("half a file")
    write_table(pd.DataFrame({"a": ["1"]}), tmp_path / "out.csv")
    assert not stale.exists() and (tmp_path / "out.csv").read_text() == "a\n1\n"


@pytest.mark.parametrize(
    "extra,needle",
    [
        ({"column": "text"}, "'text'"),
        ({"op": "extract", "source": "text", "fields": "n:int,id:str"}, "'id'"),
        ({"op": "describe", "column": None, "input_columns": None}, "'description'"),
        ({"op": "classify", "column": "id", "labels": ["a", "b"]}, "'id'"),
    ],
    ids=["map", "extract", "describe", "classify"],
)
def test_a_job_never_silently_overwrites_an_input_column(tmp_path, relio_fake, extra, needle):
    (tmp_path / "in.csv").write_text("id,text,description\nr1,keep me,mine\n")
    with pytest.raises(TableError, match=f"already has a column {needle}"):
        run_file_job(spec(tmp_path, **extra), progress=False)
    assert not relio_fake.requests and not (tmp_path / "out.csv").exists()


def test_labelled_data_drops_unlabelled_rows_but_keeps_NA_labels(tmp_path):
    from compound.evaluate.compare import load_labelled

    (tmp_path / "d.csv").write_text("text,label\nhello,NA\nbye,\n ,x\nok,00123\n")
    df = load_labelled(tmp_path / "d.csv", "text", "label")
    assert df.values.tolist() == [["hello", "NA"], ["ok", "00123"]]


def test_labelled_json_lines_name_the_bad_line_and_keep_unlabelled_rows_out(tmp_path):
    from compound.evaluate.compare import load_labelled

    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "hello", "label": "a"}\n\n{"text": "bye"}\n{"text": "ok", "label": 1}\n')
    assert load_labelled(path, "text", "label").values.tolist() == [["hello", "a"], ["ok", "1"]]
    path.write_text('{"text": "hello", "label": "a"}\n\n{"text": "bye", "label": "b",}\n')
    with pytest.raises(
        TableError, match=r"d.jsonl line 3: not JSON .*; the file must have JSON Lines: one JSON object per line"
    ):
        load_labelled(path, "text", "label")
    path.write_text('[{"text": "hello", "label": "a"}]\n')
    with pytest.raises(TableError, match=r"line 1: a JSON list, not an object \(one JSON array\?"):
        load_labelled(path, "text", "label")
    path.write_text("\n")
    from compound.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"d.jsonl: no rows"):
        load_labelled(path, "text", "label")
