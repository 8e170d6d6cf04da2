import pytest

import compound


@pytest.fixture(autouse=True)
def no_model_requests(request):
    """Unit tests never call a real model: the scripted backend only. A test that drives a real backend
    class against a local fake server opts in with ``@pytest.mark.real_backend``."""
    allowed = request.node.get_closest_marker("real_backend") is not None
    with compound.testing.override(allow_model_requests=allowed):
        yield
