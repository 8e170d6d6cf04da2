"""CSV and TSV files as text: every cell is read as the string the file holds and written back unchanged.

Guarantees:

- No type inference and no missing-value guessing: ``00123``, ``NA``, ``null``, ``1.10``, `` x `` and the
  empty cell come back exactly as they were (the quoting of a cell may change, never its value).
- The encoding is the byte-order mark's (UTF-8, UTF-16 or UTF-32), else UTF-16 or UTF-32 when the NUL bytes
  of the first characters say so, else UTF-8, else what ``encoding`` names; a mark that contradicts the
  ``encoding`` given is refused. The encoding (its mark included), the delimiter and the line ending of the
  input are kept for the output.
- A file that is not what it seems is refused, naming the line: bytes that are not in the encoding (with an
  encoding to try), a row with more or fewer fields than the header (with how to quote), duplicate or
  missing column names, an empty or header-only file. Blank lines hold no data: in a file of one column a
  blank line is an empty cell, elsewhere it is skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compound.tables.io import TableError

csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # a huge cell is data, not an error

#: byte-order marks, longest first (the UTF-32 LE mark starts with the UTF-16 LE one)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SHOWN = 3  # bad rows named in one message


@dataclass
class TextFormat:
    """How a text table is spelled, so that the output is spelled the same way."""

    encoding: str = "utf-8"
    delimiter: str = ","
    lineterminator: str = "\n"


def _family(encoding: str) -> str:
    """``utf-8``, ``utf-16``, ``utf-32`` or the codec's own name (``cp1252``...)."""
    name = codecs.lookup(encoding).name
    for family in ("utf-8", "utf-16", "utf-32"):
        if name.startswith(family):
            return family
    return name


def _unmarked(raw: bytes) -> str | None:
    """The UTF-16 or UTF-32 byte order of text without a byte-order mark, from where its NUL bytes fall
    (a table's header starts with text that is ASCII in practice); None when it does not look like either."""
    head = raw[:4]
    if len(head) < 4 or b"\x00" not in head:
        return None
    zero = [b == 0 for b in head]
    return {
        (False, True, True, True): "utf-32-le",
        (True, True, True, False): "utf-32-be",
        (False, True, False, True): "utf-16-le",
        (True, False, True, False): "utf-16-be",
    }.get(tuple(zero))  # type: ignore[arg-type]


def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """The file's text and the encoding it was read with. The byte-order mark wins; an ``encoding`` that
    contradicts it is refused; bytes that are not valid in the encoding are refused, never replaced."""
    marked = next((name for bom, name in _BOMS if raw.startswith(bom)), None)
    if encoding is None:
        encoding = marked or _unmarked(raw) or "utf-8"
    elif marked is not None:
        if _family(encoding) != _family(marked):
            raise TableError(
                f"{path}: the file starts with a {_family(marked).upper()} byte-order mark, but --encoding "
                f"{encoding} was given; drop --encoding (the mark names the encoding) or give --encoding {marked}"
            )
        encoding = marked  # utf-16-le given for a marked file: the mark is not data
    elif _family(encoding) in ("utf-16", "utf-32") and codecs.lookup(encoding).name in ("utf-16", "utf-32"):
        found = _unmarked(raw)  # no mark: Python would assume little-endian; look at the bytes instead
        encoding = found if found and _family(found) == _family(encoding) else encoding
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        hint = marked or _unmarked(raw) or "cp1252"
        raise TableError(
            f"{path}: line {line} is not valid {encoding} (byte 0x{raw[e.start]:02x}); "
            f"give the file's encoding with --encoding, e.g. --encoding {hint}"
            + (" (Excel on Windows) or latin-1" if hint == "cp1252" else "")
        ) from None
    if not raw.isascii() and _family(encoding) not in ("utf-8", "utf-16", "utf-32") and _is_utf8(raw):
        word = next(w for w in text.split() if not w.isascii())
        raise TableError(
            f"{path}: the file is UTF-8 text, but --encoding {encoding} would read it otherwise (as {word[:30]!r}); "
            "drop --encoding, or give --encoding utf-8"
        )
    if _family(encoding) in ("utf-16", "utf-32") and b"\n" in raw and "\n" not in text and "\r" not in text:
        raise TableError(
            f"{path}: the file is not {encoding} text (its line breaks do not decode as line breaks); "
            f"give the file's encoding with --encoding, e.g. --encoding {_unmarked(raw) or 'utf-8'}"
        )
    return text, encoding


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _lineterminator(text: str) -> str:
    end = text.find("\n")
    if end > 0 and text[end - 1] == "\r":
        return "\r\n"
    if end < 0 and "\r" in text:
        return "\r"
    return "\n"


def check_header(source: str, header: list[str]) -> None:
    """Column names must be given and distinct; the message names the columns and where they are."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name in seen:
            raise TableError(
                f"{source}: column {name!r} appears twice (columns {seen[name]} and {i}); "
                "give each column its own name in the header"
            )
        seen[name] = i
    if "" in seen and len(header) > 1:
        raise TableError(f"{source}: column {seen['']} has no name in the header; give it one")


def read_text_table(path: Path, encoding: str | None = None, delimiter: str | None = None) -> tuple[Any, TextFormat]:
    """The table as a DataFrame of strings (object dtype), and how the file spells it."""
    import pandas as pd

    raw = path.read_bytes()
    text, encoding = _decode(path, raw, encoding)
    if not text.strip():
        raise TableError(f"{path}: the file is empty; a table needs a header line and at least one row")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise TableError(
            f"{path}: line {line} holds a NUL byte, so this is not {encoding} text; "
            "give the file's encoding with --encoding (e.g. utf-16) or export it again as CSV"
        )
    fmt = TextFormat(encoding, delimiter or ("\t" if path.suffix.lower() == ".tsv" else ","), _lineterminator(text))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter)
    records: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for record in reader:
            records.append((line, record))
            line = reader.line_num + 1
    except csv.Error as e:
        raise TableError(f"{path}: line {line}: {e}; check the quotes on that line") from None
    while records and not records[0][1]:
        records.pop(0)
    header = records[0][1]
    check_header(str(path), header)
    width = len(header)
    rows, bad = [], []
    for number, record in records[1:]:
        if not record:
            if width == 1:
                rows.append([""])
            continue
        if len(record) != width:
            bad.append((number, len(record)))
            continue
        rows.append(record)
    if bad:
        shown = ", ".join(f"line {n} has {k}" for n, k in bad[:_SHOWN])
        more = f" (and {len(bad) - _SHOWN} more rows)" if len(bad) > _SHOWN else ""
        raise TableError(
            f"{path}: the header has {width} fields but {shown}{more}; quote the cells that hold "
            f'{_name(fmt.delimiter)} ("a{fmt.delimiter} b") or fix those rows{_delimiter_hint(header, fmt)}'
        )
    if not rows:
        raise TableError(f"{path}: the table has a header but no rows")
    return pd.DataFrame(rows, columns=header, dtype=object), fmt


def _name(delimiter: str) -> str:
    return {",": "a comma", "\t": "a tab", ";": "a semicolon"}.get(delimiter, repr(delimiter))


def _delimiter_hint(header: list[str], fmt: TextFormat) -> str:
    for other in (";", "\t", "|"):
        if other != fmt.delimiter and other in fmt.delimiter.join(header):
            return f"; if the file is separated by {_name(other)}, use --delimiter {other!r}"
    return ""


def cell_text(value: Any) -> str:
    """How a value is spelled in a text file: missing values are empty, strings are as they are."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover
        pass
    return value if isinstance(value, str) else str(value)


def write_text_table(df: Any, path: Path, fmt: TextFormat) -> None:
    """Write every cell as text in the given format; a value the encoding cannot hold names its row and column."""
    with open(path, "w", encoding=fmt.encoding, newline="") as f:
        writer = csv.writer(f, delimiter=fmt.delimiter, lineterminator=fmt.lineterminator)
        writer.writerow([cell_text(c) for c in df.columns])
        for number, row in enumerate(df.itertuples(index=False, name=None), start=2):
            cells = [cell_text(v) for v in row]
            try:
                writer.writerow(cells)
            except UnicodeEncodeError:
                column, value = next(
                    (c, v) for c, v in zip(df.columns, cells, strict=True) if not _encodes(v, fmt.encoding)
                )
                raise TableError(
                    f"{path}: row {number}, column {column!r} holds {value[:40]!r}, which {fmt.encoding} cannot "
                    "hold; convert the input to UTF-8 (the output keeps the input's encoding) and resume the job"
                ) from None


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
        return True
    except UnicodeEncodeError:
        return False
