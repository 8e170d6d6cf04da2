"""Hostile example files for ``table classify --auto --examples`` (and ``--label-column``), run through the
console script: each is refused before any model call with one ``error:`` line naming the problem and the
fix, and nothing is written; a file that is only awkward (a byte-order mark, CRLF line ends, labels padded
with spaces) is read as meant."""

import pytest

LABELS = "food,sport,tech"
WORDS = {"food": "pasta", "sport": "tennis", "tech": "laptop"}


def lines(n, label=lambda i: sorted(WORDS)[i % 3]):
    return [f"a {WORDS[label(i)] if label(i) in WORDS else 'thing'} story {i},{label(i)}" for i in range(n)]


def write_examples(path, rows, header="text,topic"):
    path.write_text("\n".join([header, *rows]) + "\n")


@pytest.fixture
def job(tmp_path):
    (tmp_path / "in.csv").write_text("id,text\n" + "".join(f"{i},a tennis story {i}\n" for i in range(40)))
    return ["table", "classify", "in.csv", "-c", "topic", "--labels", LABELS, "--input-columns", "text",
            "--model", "relio-fake", "--no-progress"]  # fmt: skip


CASES = {
    "unknown label": (lines(30, lambda i: "politics" if i == 4 else sorted(WORDS)[i % 3]), "'politics' (1 row)"),
    "too few": (lines(12), "at least 20 are needed"),
    "duplicate row": (lines(30) + lines(1), "are the same row"),
    "empty label": ([*lines(25), "a pasta story 99,"], "the label is empty"),
    "no label column": (None, "no column 'topic'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_example_files_are_refused_before_any_call(relio_cli, relio_clean_error, tmp_path, job, case):
    rows, needle = CASES[case]
    if rows is None:
        write_examples(tmp_path / "gold.csv", lines(30), header="text,label")
    else:
        write_examples(tmp_path / "gold.csv", rows)
    log = tmp_path / "calls.log"
    proc = relio_cli(*job, "--auto", "--examples", "gold.csv", env={"RELIO_FAKE_LOG": str(log)})
    line = relio_clean_error(proc, needle)
    assert "gold.csv" in line
    assert not log.exists() and not (tmp_path / "in.classify.csv").exists()  # no call made, nothing written


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--examples", "gold.csv"], "use them with classify --auto"),
        (["--auto", "--examples", "missing.csv"], "missing.csv"),
        (["--auto", "--examples", "bad.jsonl"], "JSON Lines"),
        (["--auto", "--examples", "gold.csv", "--label-column", "id"], "not both"),
        (["--auto", "--label-column", "nosuch"], "nosuch"),
    ],
)
def test_example_options_that_cannot_work_are_refused(relio_cli, relio_clean_error, tmp_path, job, extra, needle):
    write_examples(tmp_path / "gold.csv", lines(30))
    (tmp_path / "bad.jsonl").write_text('{"text": "a pasta story", "topic": "food"}\n[1, 2\n')
    relio_clean_error(relio_cli(*job, *extra), needle)


def test_the_label_column_may_not_be_read_by_the_model(relio_cli, relio_clean_error, tmp_path):
    (tmp_path / "in.csv").write_text("text,gold\n" + "".join(f"a tennis story {i},sport\n" for i in range(30)))
    args = ["table", "classify", "in.csv", "-c", "topic", "--labels", LABELS, "--input-columns", "text,gold"]
    relio_clean_error(relio_cli(*args, "--auto", "--label-column", "gold", "--model", "relio-fake"), "input columns")


def test_examples_on_extract_say_it_has_no_auto(relio_cli, relio_clean_error, tmp_path):
    (tmp_path / "in.csv").write_text("id,text\n1,hello\n")
    write_examples(tmp_path / "gold.csv", lines(30))
    args = ["table", "extract", "in.csv", "--source", "text", "--fields", "a", "--examples", "gold.csv"]
    relio_clean_error(relio_cli(*args, "--model", "relio-fake"), "extract has no --auto")


def test_an_awkward_but_valid_file_is_read_as_meant(relio_cli, tmp_path, job):
    rows = [r.replace(",", ", ") for r in lines(30)]  # ' sport': a label padded with a space
    (tmp_path / "gold.csv").write_bytes(("\ufefftext,topic\r\n" + "\r\n".join(rows) + "\r\n").encode("utf-8"))
    proc = relio_cli(*job, "--auto", "--examples", "gold.csv", timeout=300)  # the forecast loads the embedder
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "examples: 30 from" in out and "15 train the students, 15 held out" in out
