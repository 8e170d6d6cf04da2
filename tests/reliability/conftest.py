"""Shared fixtures of the reliability suite. relio's fixtures are named ``relio_*``.

Each file is a theme (``test_row_identity.py``: row identity); at the end of a run the suite reports how
many cases of each theme passed, failed and were skipped."""

import importlib.util
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

RELIO_SITE = Path(__file__).parent / "relio_site"
SRC = Path(__file__).resolve().parents[2] / "src"


def _load_fake():
    spec = importlib.util.spec_from_file_location("relio_fake", RELIO_SITE / "relio_fake.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def relio_fake():
    """``relio-fake`` registered in this process (see relio_site/relio_fake.py), 30 ms a call; returns the
    backend (its ``requests`` are the calls that reached it)."""
    import compound

    _load_fake().register(latency_s=0.03)
    return compound.get_model("relio-fake")


def relio_console_script() -> str:
    """The installed ``compound`` console script of this environment."""
    found = Path(sys.prefix) / "bin" / "compound"
    return str(found) if found.exists() else shutil.which("compound")


@pytest.fixture
def relio_cli(tmp_path):
    """Run the installed ``compound`` console script in a subprocess, with its own COMPOUND_HOME and the fake
    model registered; returns the CompletedProcess (text mode)."""
    home = tmp_path / "home"

    def environment(extra=None):
        full = {
            **os.environ,
            "COMPOUND_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(SRC), str(RELIO_SITE)]),
            "RELIO_FAKE": "1",
            "COLUMNS": "200",
            **(extra or {}),
        }
        full.pop("COMPOUND_DEBUG", None)
        return full

    def run(*args, env=None, timeout=120, cwd=None):
        return subprocess.run(
            [relio_console_script(), *map(str, args)],
            env=environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or tmp_path,
        )

    def popen(*args, env=None):
        """Start the console script without waiting (its stderr is a pipe)."""
        return subprocess.Popen(
            [relio_console_script(), *map(str, args)],
            env=environment(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )

    run.home = home
    run.popen = popen
    return run


@pytest.fixture
def relio_clean_error():
    """``check(proc, *needles, code=None)``: a handled error"""
    return _clean_error


def _clean_error(proc, *needles, code=None):
    """A handled error: non-zero status, one ``error:`` line on stderr naming the problem, no traceback."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle.lower() in errors[0].lower(), (needle, errors[0])
    return errors[0]


_THEMES: dict[str, Counter] = defaultdict(Counter)


def pytest_runtest_logreport(report):
    """Count each case once, under its file's theme: its call's outcome, or a setup that failed or skipped."""
    path = report.nodeid.split("::")[0]
    if "tests/reliability/" not in path.replace(os.sep, "/"):
        return
    theme = Path(path).stem.removeprefix("test_").replace("_", " ")
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "failed" if report.outcome == "failed" else report.outcome
        _THEMES[theme][outcome] += 1


def pytest_terminal_summary(terminalreporter):
    if not _THEMES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability cases per theme")
    write(f"{'theme':<24} {'cases':>6} {'passed':>7} {'failed':>7} {'skipped':>8}")
    for theme in sorted(_THEMES):
        c = _THEMES[theme]
        write(f"{theme:<24} {sum(c.values()):>6} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8}")
