"""The peers benchmark on any labelled JSON Lines file (``run.py --data PATH.jsonl``): the file is read
and checked before anything runs, its labels come from the data, and bad data is refused naming the line
and the fix. Nothing here runs a model; ``test_smoke.py`` runs ``--smoke --data`` end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks" / "peers"))

import corpora  # noqa: E402


def write(tmp_path, lines, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_a_file_gives_its_rows_and_its_labels_read_from_the_data(tmp_path):
    path = write(
        tmp_path,
        [{"text": "good", "label": "yes", "id": 7}, "", {"text": "bad", "label": "no"}, {"text": "ok", "label": "yes"}],
    )
    data = corpora.from_jsonl(str(path))
    assert data.labels == ("no", "yes") and data.positive == "yes" and data.claim == "{text} is yes"
    assert data.rows() == [
        {"text": "good", "label": "yes"},
        {"text": "bad", "label": "no"},
        {"text": "ok", "label": "yes"},
    ]
    assert "3 rows (no 1, yes 2)" in data.title and data.sha256 in data.record()["sha256"]
    # what the run's JSON keeps is enough to make the README without the file
    path.unlink()
    again = corpora.dataset_of({"data": str(path), "data_file": json.loads(json.dumps(data.record()))})
    assert again.labels == data.labels and again.source == data.source
    assert corpora.from_jsonl is not None and corpora.dataset_of({"data": "sms-spam"}).positive == "spam"


def test_numeric_labels_are_labels_and_positive_and_claim_can_be_given(tmp_path):
    path = write(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 1.0}, {"text": "c", "label": "1"}])
    data = corpora.from_jsonl(str(path), positive="0", claim="{text} is off topic")
    assert [r["label"] for r in data.rows()] == ["0", "1", "1"] and data.labels == ("0", "1")
    assert data.positive == "0" and data.claim == "{text} is off topic"
    with pytest.raises(SystemExit, match=r"--positive 'maybe' is not a label of .*its labels: 0, 1"):
        corpora.from_jsonl(str(path), positive="maybe")
    with pytest.raises(SystemExit, match=r"must contain \{text\}"):
        corpora.from_jsonl(str(path), claim="it is spam")


BAD = [
    (
        ["text,label", "hello,x"],
        r"line 1: not JSON \(Expecting value\); the file must have JSON Lines: one JSON object per line",
    ),
    (['[{"text": "a", "label": "x"}]'], r"line 1: a JSON list, not an object \(one JSON array\?"),
    ([{"text": "a", "label": "x"}, "42"], r"line 2: a JSON int, not an object"),
    ([{"text": "a", "label": "x"}, "", {"text": "b"}], r'line 3: no "label" \(its keys: "text"\); every line needs'),
    ([{"label": "x"}], r'line 1: no "text" \(its keys: "label"\)'),
    ([{"text": "a", "label": None}], r'line 1: no "label"'),
    ([{"text": "  ", "label": "x"}], r'line 1: "text" is "  "; every line needs "text" \(non-empty text\)'),
    ([{"text": 5, "label": "x"}], r'line 1: "text" is 5'),
    ([{"text": "a", "label": ["x"]}], r'line 1: "label" is \["x"\]'),
    ([{"text": "a", "label": True}], r'line 1: "label" is true'),
    ([], r"no rows \(the file is empty\)"),
    (
        [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}],
        r"all 2 rows have the label 'x'; .* at least two labels",
    ),
]


@pytest.mark.parametrize("lines,error", BAD, ids=[e.split(";")[0][:30] for _, e in BAD])
def test_bad_data_is_refused_naming_the_line_and_the_fix(tmp_path, lines, error):
    path = write(tmp_path, lines)
    with pytest.raises(SystemExit, match=error) as e:
        corpora.from_jsonl(str(path))
    assert str(e.value).startswith(str(path))


def test_a_file_that_is_not_utf8_or_not_there(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "x"}\n{"text": "caf\xe9", "label": "y"}\n')
    with pytest.raises(SystemExit, match=r"latin.jsonl line 2: not UTF-8 text; save the file as UTF-8"):
        corpora.from_jsonl(str(path))
    with pytest.raises(SystemExit, match=r"nothing.jsonl: no such file"):
        corpora.from_jsonl(str(tmp_path / "nothing.jsonl"))


def run(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers" / "run.py"), *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_the_runner_refuses_bad_data_before_installing_or_starting_anything(tmp_path):
    path = write(tmp_path, [{"text": "a", "label": "x"}, {"txt": "b", "label": "y"}])
    done = run("--data", path, "--json", tmp_path / "out.json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f'{path} line 2: no "text" (its keys: "txt", "label")' in done.stderr
    assert not (tmp_path / "out.json").exists()
    unknown = run("--data", "imdb", "--json", tmp_path / "out.json")
    assert unknown.returncode == 1 and "neither a built-in data set (rotten-tomatoes, sms-spam)" in unknown.stderr


def test_a_file_of_more_than_two_labels_runs_every_task_but_the_cascade(tmp_path):
    path = write(tmp_path, [{"text": f"t{i}", "label": "abc"[i % 3]} for i in range(30)])
    asked = run("--data", path, "--tasks", "classify,cascade", "--json", tmp_path / "out.json")
    assert asked.returncode == 1
    assert (
        "decides one claim (two labels)" in asked.stderr
        and "has 3 labels: run --tasks classify,vote,optimize,map" in asked.stderr
    )
    import run as runner  # noqa: E402  # benchmarks/peers/run.py

    assert runner.fitting_tasks(None, corpora.from_jsonl(str(path))) == "classify,vote,optimize,map"
    two = write(tmp_path, [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}], "two.jsonl")
    assert runner.fitting_tasks(None, corpora.from_jsonl(str(two))) == ",".join(runner.TASKS)
