"""The main job's table: every way's cost is counted, and a second run says which calls its cache answered."""

import io

from rich.console import Console

from compound import ScriptedBackend
from compound.core.settings import get_settings
from compound.demo import run_demo
from compound.testing import override


def test_a_second_demo_run_reports_the_same_cost_and_names_the_calls_from_the_cache(tmp_path):
    small = ScriptedBackend(lambda request: '{"sex": "male"}', model="small", latency_s=0.01)
    large = ScriptedBackend(lambda request: '{"sex": "female"}', model="large", latency_s=0.01)
    models = {get_settings().small: small, get_settings().large: large}
    console = Console(file=io.StringIO(), width=300)
    with override(models=models, allow_model_requests=False, settings={"home": tmp_path}):
        first = run_demo(rows=8, console=console)
        calls_made = len(small.requests) + len(large.requests)
        second = run_demo(rows=8, console=console)
    assert calls_made > 0 and len(small.requests) + len(large.requests) == calls_made  # no new call
    for a, b in zip(first["ways"], second["ways"], strict=True):
        assert a["calls_from_cache"] == 0
        assert b["accuracy"] == a["accuracy"] and b["calls"] == a["calls"]
        # every model call came from the cache; compound's in-process student work is done again,
        # counted as local steps, apart from model calls
        assert 0 < b["calls_from_cache"] == b["calls"]
    assert [w["local_steps"] > 0 for w in second["ways"]] == [False, False, True]
    printed = console.file.getvalue()
    assert "answered by {'tabular'" in printed and "rows from the row cache" in printed  # first run, second
    assert "answered from an earlier run's cache" in printed
    way = second["ways"][0]
    assert f"{way['calls']} of {way['calls']} calls answered from an earlier run's cache" in printed
