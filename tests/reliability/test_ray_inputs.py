"""Bad Ray input is one clear error before any row is computed or any job is opened."""

import socket
import time

import pandas as pd
import pytest

from compound import ScriptedBackend
from compound.core.errors import ConfigurationError
from compound.tables import operators as ops
from compound.tables.jobs import job_store, process_table

pytest.importorskip("ray", reason="needs ray: pip install 'compound[ray]'")

from compound.tables.ray_runner import RayOptions, RayRunner  # noqa: E402


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def job():
    df = pd.DataFrame({"thing": ["whale", "ant"]})
    model = ScriptedBackend(['{"size": "big"}'])
    return ops.classify_op(df, "size", ["big", "small"], model=model), df, model


@pytest.mark.parametrize(
    "address, needle",
    [
        (f"127.0.0.1:{closed_port()}", "cannot reach a Ray cluster at"),
        (f"ray://127.0.0.1:{closed_port()}", "cannot reach a Ray cluster at"),
        ("headnode", "is not HOST:PORT"),
    ],
)
def test_an_unreachable_or_malformed_address_is_refused_before_the_job_opens(address, needle):
    op, df, model = job()
    t0 = time.monotonic()
    with pytest.raises(ConfigurationError, match=needle) as info:
        process_table(op, df, job_id="never", runner=RayRunner(address=address))
    assert "ray start --head" in str(info.value)  # it says how to get a cluster
    assert time.monotonic() - t0 < 15
    assert model.requests == [] and job_store().get("never") is None


@pytest.mark.parametrize("bad", [{"workers": 0}, {"batch_size": 0}, {"num_cpus": 0}, {"max_attempts": 0}])
def test_impossible_options_are_refused(bad):
    with pytest.raises(ConfigurationError):
        RayOptions(**bad)
