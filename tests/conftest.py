import pytest

import compound


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own cache, trace store and models folder."""
    monkeypatch.setenv("COMPOUND_HOME", str(tmp_path / "home"))
    with compound.testing.configured(home=tmp_path / "home"):
        yield tmp_path / "home"
