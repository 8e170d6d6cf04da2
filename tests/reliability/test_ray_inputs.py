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
    return ops.classify(df, "size", ["big", "small"], model=model), df, model


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


def test_the_cli_refuses_an_unreachable_cluster_before_any_row(tmp_path, compound_cli):
    pd.DataFrame({"thing": ["whale", "ant"]}).to_csv(tmp_path / "t.csv", index=False)
    args = ["table", "classify", tmp_path / "t.csv", "--labels", "big,small", "--model", "scripted", "--job", "j"]
    done = compound_cli(*args, "--ray", f"127.0.0.1:{closed_port()}", "--workers", "2")
    assert done.returncode == 1
    assert "cannot reach a Ray cluster at '127.0.0.1:" in done.stderr and "ray start --head" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "t.classify.csv").exists()
    assert job_store().get("j") is None  # no job was opened


def test_the_cli_refuses_workers_without_ray(tmp_path, compound_cli):
    pd.DataFrame({"thing": ["whale"]}).to_csv(tmp_path / "t.csv", index=False)
    done = compound_cli("table", "classify", tmp_path / "t.csv", "--labels", "big,small", "--workers", "2")
    assert done.returncode == 1 and "add --ray ADDRESS" in done.stderr
