import pytest

import compound
from compound.core import settings as settings_mod


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own cache, trace store and models folder."""
    monkeypatch.setenv("COMPOUND_HOME", str(tmp_path / "home"))
    saved = settings_mod._global
    compound.configure(home=tmp_path / "home")
    yield tmp_path / "home"
    settings_mod._global = saved
