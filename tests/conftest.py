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


@pytest.fixture
def bag_of_words_embeddings(monkeypatch):
    """A fast stand-in for MiniLM (unit tests must not load torch): unit-length hashed bags of words."""
    import numpy as np

    def embed(texts, model_path=None):
        out = np.zeros((len(texts), 64), dtype="float32")
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, sum(map(ord, w)) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    monkeypatch.setattr("compound.optimize.students.embedding.embed_texts", embed)
