"""Excel workbooks (.xlsx, .xlsm) through openpyxl, cell by cell.

Guarantees:

- Cells are read as the values the workbook stores (text stays text, ``00123`` and ``NA`` included; numbers,
  dates and booleans keep their type) and written back as the same values.
- Every text cell is written as a string cell, never as a formula, whatever it starts with.
- Writing into a workbook that the job read keeps every other sheet (and the workbook's styles): only the
  processed sheet's cells are replaced. A sheet holding formulas is refused rather than flattened to values.
- Blank rows hold no data and are skipped; a column without a name, or two with the same name, is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compound.tables.io import TableError
from compound.tables.textfile import check_header

#: the first bytes of an OLE2 compound file: what Excel writes for a password-protected workbook (and .xls)
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _check_not_encrypted(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise TableError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not head.startswith(_OLE2):
        return
    if (
        "EncryptionInfo".encode("utf-16-le") in head
        or b"EncryptedPackage" in head
        or "EncryptedPackage".encode("utf-16-le") in head
    ):
        raise TableError(
            f"{path}: the workbook is password-protected (encrypted), so it cannot be read; open it in Excel, "
            "remove the password (File > Info > Protect Workbook > Encrypt with Password, cleared) and save it again"
        )
    raise TableError(
        f"{path}: this is an old binary Excel file (.xls) or another OLE2 file named {path.suffix}, not an .xlsx "
        "workbook; open it in Excel and save it as .xlsx (or as CSV)"
    )


def _open(path: Path, read_only: bool) -> Any:
    from openpyxl import load_workbook

    _check_not_encrypted(path)
    try:
        return load_workbook(path, read_only=read_only, keep_vba=path.suffix.lower() == ".xlsm")
    except Exception as e:
        raise TableError(
            f"{path}: cannot read it as excel ({type(e).__name__}: {e}); save it again as .xlsx from Excel"
        ) from None


def sheet_names(path: Path) -> list[str]:
    wb = _open(path, read_only=True)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def read_sheet(path: Path, sheet: str | None = None) -> tuple[Any, str, list[str]]:
    """The sheet as a DataFrame (object dtype), its name, and the names of every sheet in the workbook."""
    import pandas as pd

    wb = _open(path, read_only=True)
    try:
        names = list(wb.sheetnames)
        name = sheet if sheet is not None else names[0]
        if name not in names:
            raise TableError(f"{path}: no sheet {name!r}; the sheets are: {', '.join(names)}")
        rows: list[list[Any]] = []
        for number, cells in enumerate(wb[name].iter_rows(), start=1):
            for cell in cells:
                if getattr(cell, "data_type", None) == "f":
                    raise TableError(
                        f"{path}: sheet {name!r} holds formulas (cell {cell.coordinate}: {str(cell.value)[:40]}); "
                        "a job rewrites the sheet and would turn them into text: copy the sheet as values "
                        "(Paste Special > Values) or save it as CSV first"
                    )
            values = [cell.value for cell in cells]
            if any(v is not None and v != "" for v in values):
                rows.append([number, *values])
    finally:
        wb.close()
    if not rows:
        raise TableError(f"{path}: sheet {name!r} is empty; a table needs a header row and at least one row")
    header = rows[0][1:]
    while header and header[-1] is None and all(len(r) <= len(header) or r[len(header)] is None for r in rows):
        header.pop()  # columns that are only formatting
    width = len(header)
    for i, h in enumerate(header, start=1):
        if h is None:
            raise TableError(f"{path}: sheet {name!r}, column {i} has no name in the header row; give it one")
    header = [str(h) for h in header]
    check_header(f"{path} (sheet {name!r})", header)
    body = []
    for r in rows[1:]:
        cells = r[1 : 1 + width] + [None] * max(0, width + 1 - len(r))
        extra = [v for v in r[1 + width :] if v is not None]
        if extra:
            raise TableError(
                f"{path}: sheet {name!r}, row {r[0]} has cells beyond the {width} named columns; "
                "name their column in the header row or clear them"
            )
        body.append(cells)
    if not body:
        raise TableError(f"{path}: sheet {name!r} has a header row but no rows")
    return pd.DataFrame(body, columns=header, dtype=object), name, names


def _excel_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, (str, int, float, bool)) or hasattr(value, "isoformat"):
        return value
    text = str(value)
    return None if text in ("<NA>", "NaT") else text


def write_sheet(df: Any, path: Path, *, like: Path | None = None, sheet: str | None = None) -> None:
    """Write ``df`` as sheet ``sheet``: into a copy of workbook ``like`` (its other sheets kept) when given,
    else into a new workbook."""
    from openpyxl import Workbook
    from openpyxl.utils.exceptions import IllegalCharacterError

    if like is not None:
        wb = _open(like, read_only=False)
        ws = wb[sheet] if sheet in wb.sheetnames else wb.create_sheet(sheet or "Sheet1")
        ws.delete_rows(1, ws.max_row)
    else:
        wb = Workbook()
        ws: Any = wb.active  # a new workbook always has one sheet
        ws.title = sheet or "Sheet1"
    rows = [list(map(str, df.columns)), *df.itertuples(index=False, name=None)]
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = ws.cell(row=r, column=c)
            try:
                cell.value = _excel_value(value)
            except (IllegalCharacterError, ValueError) as e:
                raise TableError(
                    f"{path}: row {r}, column {df.columns[c - 1]!r} holds {str(value)[:40]!r}, which an .xlsx "
                    f"cell cannot hold ({e}); write to .csv instead"
                ) from None
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, never a formula
    wb.save(path)
