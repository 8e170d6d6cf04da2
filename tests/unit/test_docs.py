"""Every code block of README.md and docs/*.md runs as written: Python on a scripted model, shell in a temp dir.

- ```python blocks of one page run in order in one namespace (a block may continue the one before), in a
  scratch folder, with every model replaced by a scripted backend that answers each typed call with a
  value that fits its schema, and real model calls forbidden.
- ```bash blocks run with ``bash -e`` in a scratch folder holding the input files the docs name
  (``reviews.csv``, ``contracts.xlsx``, ``data/sms_spam.jsonl``), with this environment's ``compound`` and ``python`` on the PATH, a
  fresh ``COMPOUND_HOME`` and the same scripted model (``docs_site/sitecustomize.py``); real model calls
  are forbidden there too (``COMPOUND_ALLOW_MODEL_REQUESTS=0``), so a block that reached a real model fails.
- A block that needs what a unit test cannot have (a trained adapter, a server, a cluster, a download) is
  marked next to its fence with ``<!-- covered-by: TARGET ... -->``: each TARGET is a named test
  (``tests/x.py::test_y``, which must exist) or a file that runs the block's command itself (``.ci/run``,
  ``Makefile``, which must contain it). Nothing is skipped silently: the count of blocks run and covered
  is printed and checked.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import compound

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).parent / "docs_site"
sys.path.insert(0, str(SITE))
import docs_fake  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = r"<!--\s*covered-by:\s*(?P<{}>[^>]*?)\s*-->"
FENCE = re.compile(
    rf"(?:{MARK.format('before')}[ \t]*\n)?```(?P<lang>\w+)\n(?P<code>.*?)```[ \t]*\n(?:{MARK.format('after')})?",
    re.S,
)


def blocks(page: Path) -> list[dict]:
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        covered = (m["before"] or m["after"] or "").split()
        found.append(
            {"page": page, "line": text[: m.start("lang")].count("\n") + 1, "lang": m["lang"], "code": m["code"],
             "covered": covered}
        )  # fmt: skip
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def where(block: dict) -> str:
    return f"{block['page'].relative_to(ROOT)}:{block['line']}"


def test_every_block_is_python_or_bash():
    assert {b["lang"] for b in ALL} <= {"python", "bash"}, "a code block in another language would not be run"


def test_every_covered_block_names_a_test_or_file_that_runs_it():
    for block in (b for b in ALL if b["covered"]):
        for target in block["covered"]:
            path, _, test = target.partition("::")
            assert (ROOT / path).is_file(), f"{where(block)}: covered-by names {path}, which does not exist"
            text = (ROOT / path).read_text()
            if test:
                assert re.search(rf"^(async )?def {re.escape(test)}\(", text, re.M), f"{where(block)}: no {target}"
            else:
                commands = [line.split("#")[0].split()[:2] for line in block["code"].splitlines() if line.strip()]
                assert any(" ".join(c) in text for c in commands), f"{where(block)}: {path} does not run it"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_block_runs_on_the_scripted_backend(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake = docs_fake.fake()
    namespace: dict = {"__name__": "docs"}
    ran = 0
    # configured(): a block that changes the process-wide settings (configure(...)) changes them for this test only
    with compound.testing.configured(), compound.testing.override(models=fake, allow_model_requests=False):
        for block in blocks(page):
            if block["lang"] != "python" or block["covered"]:
                continue
            try:
                exec(compile(block["code"], where(block), "exec"), namespace)
            except Exception as e:
                pytest.fail(f"{where(block)} failed: {type(e).__name__}: {e}")
            ran += 1
    if page.name == "README.md":
        assert ran and fake.requests, "the README's Python blocks made no model call at all"


def _inputs(folder: Path) -> None:
    """The input files the shell blocks name."""
    import pandas as pd

    pd.DataFrame({"review": ["a moving, beautifully acted film", "dull, and far too long"]}).to_csv(
        folder / "reviews.csv", index=False
    )
    pd.DataFrame({"text": ["Acme Ltd pays 1200.50, signed", "Globex owes 300, not signed"]}).to_excel(
        folder / "contracts.xlsx", index=False
    )
    (folder / "data").mkdir()
    rows = [{"text": f"message {i}", "label": "spam" if i % 5 == 0 else "not spam"} for i in range(240)]
    pd.DataFrame(rows).to_json(folder / "data" / "sms_spam.jsonl", orient="records", lines=True)


def _env(tmp_path: Path) -> dict[str, str]:
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    python_path = os.pathsep.join([str(ROOT / "src"), str(SITE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PATH": path, "PYTHONPATH": python_path, "COMPOUND_HOME": str(tmp_path / "home"),
            "COMPOUND_DOCS_FAKE": "1", "COMPOUND_ALLOW_MODEL_REQUESTS": "0", "COLUMNS": "200"}  # fmt: skip


SHELL = [b for b in ALL if b["lang"] == "bash" and not b["covered"]]


@pytest.mark.parametrize("block", SHELL, ids=[where(b) for b in SHELL])
def test_every_shell_block_runs_in_a_temp_dir(block, tmp_path):
    _inputs(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # blocks run examples/*.py from the repository root
    done = subprocess.run(
        ["bash", "-e", "-c", block["code"]], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (
        f"{where(block)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    )


def test_the_count_of_blocks_run_and_covered(capsys):
    python = [b for b in ALL if b["lang"] == "python"]
    counts = {
        "python run": sum(not b["covered"] for b in python),
        "bash run": len(SHELL),
        "covered by a named test or file": sum(bool(b["covered"]) for b in ALL),
    }
    with capsys.disabled():
        print(
            f"\ndocs: {len(ALL)} code blocks in {len(PAGES)} pages: " + ", ".join(f"{v} {k}" for k, v in counts.items())
        )
    assert counts["python run"] + counts["bash run"] + counts["covered by a named test or file"] == len(ALL)
    assert counts["python run"] >= 7 and counts["bash run"] >= 5


def test_readme_docs_and_examples_use_only_the_flat_api():
    deep = re.compile(r"^\s*(from compound\.|import compound\.)", re.M)
    for block in (b for b in ALL if b["lang"] == "python"):
        assert not deep.search(block["code"]), f"{where(block)} imports a deep path"
    # the one deep import an example may make: the server's built-in sample program, which is not root API
    builtin = "from compound.serve.write_email import WriteEmail\n"
    for path in sorted((ROOT / "examples").glob("*.py")):
        text = path.read_text().replace(builtin, "")
        assert not deep.search(text), f"{path.name} imports a deep path; use compound.X"


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert text.count("\n") <= 200
    assert text.startswith("```bash\nmake demo ") and text.splitlines()[2].startswith("make test ")
