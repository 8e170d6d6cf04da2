"""The Ray path on a local Ray cluster started by the test gives the same output as the local path."""

import json
import sys

import pandas as pd
import pytest

from compound import ScriptedBackend
from compound.tables import operators as ops
from compound.tables.jobs import process_table

ray = pytest.importorskip("ray", reason="needs ray: pip install 'compound[ray]'")


def label(request):
    text = request.messages[-1].content
    return json.dumps({"size": "big" if any(w in text for w in ("whale", "elephant", "truck")) else "small"})


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get this module's functions by value
    yield
    ray.shutdown()


def test_ray_matches_local(local_cluster):
    from compound.tables.ray_runner import run_table_on_ray

    things = ["whale", "ant", "truck", "pebble", "elephant", "ant", "mouse", "truck"] * 5
    df = pd.DataFrame({"id": range(len(things)), "thing": things})
    local = process_table(ops.classify(df, "size", ["big", "small"], model=ScriptedBackend(label)), df).df
    remote = run_table_on_ray(
        ops.classify(df, "size", ["big", "small"], model=ScriptedBackend(label)), df, workers=2, batch_size=4
    )
    pd.testing.assert_frame_equal(remote.reset_index(drop=True), local.reset_index(drop=True))
    assert remote["size"].tolist()[:3] == ["big", "small", "big"]
