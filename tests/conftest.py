import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import compound


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own cache, trace store and models folder."""
    monkeypatch.setenv("COMPOUND_HOME", str(tmp_path / "home"))
    with compound.testing.configured(home=tmp_path / "home"):
        yield tmp_path / "home"


def console_script() -> str:
    """The installed ``compound`` console script of this environment."""
    found = Path(sys.prefix) / "bin" / "compound"
    return str(found) if found.exists() else (shutil.which("compound") or str(found))


@pytest.fixture
def compound_cli(isolated_home):
    """Run the installed ``compound`` console script in a subprocess with the test's COMPOUND_HOME (and
    ``env`` on top of this process's environment); returns the CompletedProcess (text mode)."""

    def run(*args, env=None, timeout=300):
        full = {**os.environ, "COMPOUND_HOME": str(isolated_home), **(env or {})}
        cmd = [console_script(), *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=full, timeout=timeout)

    return run
