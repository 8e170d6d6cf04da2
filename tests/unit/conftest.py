import pytest

import compound


@pytest.fixture(autouse=True)
def no_model_requests(request):
    """Unit tests never call a real model: the scripted backend only. A test that drives a real backend
    class against a local fake server opts in with ``@pytest.mark.real_backend``."""
    allowed = request.node.get_closest_marker("real_backend") is not None
    with compound.testing.override(allow_model_requests=allowed):
        yield


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
