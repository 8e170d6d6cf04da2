"""The smaller holes, each with its case, written as a careless user or an attacker would hit them: an
empty field name in ``--fields``, a workbook's other sheets, a password-protected workbook, a column name
with surrounding spaces, and a new ``--out`` on ``--resume`` after an output that could not be used."""

import csv
import io

import openpyxl
import pytest

import compound
from compound.cli.table_job import parse_fields, run_file_job
from compound.core.errors import ConfigurationError
from compound.tables.io import TableError, open_table
from compound.tables.jobs import JobStopped, job_store


def spec(tmp_path, name="in.csv", out="out.csv", **extra):
    return {
        "op": "map",
        "input": str(tmp_path / name),
        "out": str(tmp_path / out),
        "column": "out",
        "instruction": "summarise",
        "model": "relio-fake",
        **extra,
    }


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize(
    "text,needle",
    [
        (":int", "no field name"),
        ("name:int,:str", "no field name"),
        (" : ", "no field name"),
        ("age:int, age:str", "given twice"),
        ("age:decimal", "unknown type"),
        (",,,", "at least one"),
    ],
)
def test_bad_fields_are_refused(text, needle):
    with pytest.raises(ConfigurationError, match=needle):
        parse_fields(text)


def test_fields_with_spaces_around_names_and_types_parse():
    assert parse_fields(" name : str , age:int ") == {"name": str, "age": int}


def test_cli_extract_with_an_empty_field_name_is_refused(tmp_path, relio_cli, relio_clean_error):
    (tmp_path / "in.csv").write_text("id,text\nr1,hello\n")
    proc = relio_cli("table", "extract", "in.csv", "--source", "text", "--fields", ":int", "--model", "relio-fake")
    relio_clean_error(proc, "no field name", code=1)
    assert not (tmp_path / "in.extract.csv").exists()


def workbook(path, sheets):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, sheet_rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in sheet_rows:
            ws.append(row)
    wb.save(path)


SHEETS = {"Data": [["id"], ["r1"]], "Notes": [["x"], [1]], "Old": [["y"], [2]]}


def test_the_other_sheets_of_a_workbook_are_mentioned(tmp_path, relio_fake):
    workbook(tmp_path / "in.xlsx", SHEETS)
    result, _ = run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx"), progress=False)
    assert any("3 sheets" in n and "'Notes'" in n and "'Old'" in n and "--sheet" in n for n in result.notes)


def test_no_sheet_note_when_the_sheet_is_chosen_or_alone(tmp_path, relio_fake):
    workbook(tmp_path / "in.xlsx", SHEETS)
    result, _ = run_file_job(spec(tmp_path, "in.xlsx", "out.xlsx", sheet="Notes"), progress=False)
    assert not any("sheets" in n for n in result.notes)
    workbook(tmp_path / "one.xlsx", {"Data": SHEETS["Data"]})
    result, _ = run_file_job(spec(tmp_path, "one.xlsx", "one-out.xlsx"), progress=False)
    assert not any("sheets" in n for n in result.notes)


def test_cli_warns_about_the_other_sheets(tmp_path, relio_cli):
    workbook(tmp_path / "in.xlsx", SHEETS)
    proc = relio_cli(
        "table", "map", "in.xlsx", "--column", "out", "--instruction", "s", "--model", "relio-fake", "--out", "out.xlsx"
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 sheets" in proc.stderr and "--sheet" in proc.stderr


def test_a_password_protected_workbook_is_reported_as_such(tmp_path):
    ooxml = pytest.importorskip("msoffcrypto.format.ooxml")
    workbook(tmp_path / "plain.xlsx", {"Data": SHEETS["Data"]})
    encrypted = io.BytesIO()
    with open(tmp_path / "plain.xlsx", "rb") as f:
        ooxml.OOXMLFile(f).encrypt("secret", encrypted)
    (tmp_path / "locked.xlsx").write_bytes(encrypted.getvalue())
    with pytest.raises(TableError, match="password-protected") as caught:
        open_table(tmp_path / "locked.xlsx")
    assert "not a zip file" not in str(caught.value)


def test_an_old_xls_named_xlsx_is_reported_as_such(tmp_path):
    (tmp_path / "old.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(TableError, match=r"old binary Excel file \(.xls\)"):
        open_table(tmp_path / "old.xlsx")


SPACED = "id, price ,text\nr1,3,hello\nr2,4,world\n"


@pytest.mark.parametrize(
    "extra",
    [
        {"input_columns": ["price"]},
        {"input_columns": ["id", "price"]},
    ],
    ids=["price alone", "with another column"],
)
def test_a_column_with_spaces_around_its_name_is_found_by_its_stripped_name(tmp_path, relio_fake, extra):
    (tmp_path / "in.csv").write_text(SPACED)
    run_file_job(spec(tmp_path, **extra), progress=False)
    out = rows(tmp_path / "out.csv")
    assert out[0] == ["id", " price ", "text", "out"]
    first = "3" if extra["input_columns"][0] == "price" else "r1"
    assert out[1][3] == f"R({first})"


def test_extract_from_a_spaced_source_column(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("id, note \nr1,hello\n")
    run_file_job({**spec(tmp_path), "op": "extract", "source": "note", "fields": "word:str"}, progress=False)
    assert rows(tmp_path / "out.csv")[1][2] == "R(hello)"


def test_an_exact_name_wins_over_a_spaced_one(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("price, price \n1,2\n")
    run_file_job(spec(tmp_path, input_columns=["price"]), progress=False)
    assert rows(tmp_path / "out.csv")[1][2] == "R(1)"


def test_cli_names_a_spaced_column(tmp_path, relio_cli):
    (tmp_path / "in.csv").write_text(SPACED)
    proc = relio_cli(
        "table",
        "map",
        "in.csv",
        "--column",
        "out",
        "--instruction",
        "s",
        "--model",
        "relio-fake",
        "--input-columns",
        " price ",
        "--out",
        "out.csv",
    )
    assert proc.returncode == 0, proc.stderr
    assert rows(tmp_path / "out.csv")[1][3] == "R(3)"


def test_resume_takes_a_new_out_after_a_bad_extension(tmp_path, relio_cli, relio_clean_error):
    (tmp_path / "in.csv").write_text("id\nr1\nr2\n")
    args = ["table", "map", "in.csv", "--column", "out", "--instruction", "s", "--model", "relio-fake", "--job", "j"]
    relio_clean_error(relio_cli(*args, "--out", "out.txt"), "unknown table format", code=1)
    proc = relio_cli("table", "--resume", "j", "--out", "out.csv")
    assert proc.returncode == 0, proc.stderr
    assert rows(tmp_path / "out.csv") == [["id", "out"], ["r1", "R(r1)"], ["r2", "R(r2)"]]


def test_resume_after_a_stop_writes_to_the_new_out(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("id\n" + "".join(f"r{i}\n" for i in range(8)))
    with pytest.raises(JobStopped), compound.budget(calls=2):
        run_file_job(spec(tmp_path, job_id="k"), progress=False)
    result, out = run_file_job({"out": str(tmp_path / "elsewhere" / "new.csv")}, resume="k", progress=False)
    assert out == (tmp_path / "elsewhere" / "new.csv").resolve() and result.from_checkpoint >= 2
    assert len(rows(out)) == 9 and not (tmp_path / "out.csv").exists()
    assert job_store().get("k")["spec"]["out"] == str(out)


def test_resume_still_refuses_other_changed_options(tmp_path, relio_fake):
    (tmp_path / "in.csv").write_text("id\n" + "".join(f"r{i}\n" for i in range(4)))
    with pytest.raises(JobStopped), compound.budget(calls=1):
        run_file_job(spec(tmp_path, job_id="m"), progress=False)
    with pytest.raises(ConfigurationError, match="--instruction"):
        run_file_job({"instruction": "other", "out": str(tmp_path / "x.csv")}, resume="m", progress=False)
