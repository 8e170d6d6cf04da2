"""``compound optimize``'s search (``evaluate.search``) and command on scripted small, medium and large
models (tests/unit/optimize_site/optimize_fakes.py: wrong on every 4th, every 10th and no row; priced 1, 3
and 10 dollars per million tokens; 10 to 40 ms a call)."""

import json
import os
import runpy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import compound
from compound.core.concurrency import run_sync
from compound.core.errors import ConfigurationError
from compound.core.settings import configured
from compound.evaluate import search as s
from compound.routing.calibrate import lower_bound

SITE = Path(__file__).parent / "optimize_site"


def _fakes():
    return SimpleNamespace(**runpy.run_path(str(SITE / "optimize_fakes.py")))


@pytest.fixture
def fakes(isolated_home, bag_of_words_embeddings):
    module = _fakes()
    before = compound.get_settings()
    module.register()
    yield module
    compound.configure(small=before.small, medium=before.medium, large=before.large, prices=before.prices)


def task(fakes, target, n=160, evaluate=60, train=20):
    df = pd.DataFrame(fakes.rows(n))
    return s.Task.split(df, "text", "label", target=target, delta=0.05, evaluate=evaluate, train=train)


def test_the_search_picks_the_cheapest_configuration_whose_accuracy_bound_meets_the_target(fakes):
    t = task(fakes, target=0.75)
    configs = s.configurations(["small", "medium", "large"], ["single", "vote3"], ["none", "knn"])
    planned = run_sync(s.forecast(t, configs))
    assert [r["config"] for r in planned["configs"]] == [c.name for c in configs]
    large = next(r for r in planned["configs"] if r["config"] == "large")
    assert large["search"]["calls"] == 60 and large["job"]["calls"] == 160
    # the cache is on: a vote's greedy candidate is the single configuration's call, computed once
    vote = next(r for r in planned["configs"] if r["config"] == "small+vote3")
    assert vote["search"]["calls"] + vote["cached"]["calls"] == 180 and vote["cached"]["calls"] == 60
    found = run_sync(s.search(t, configs, planned, cost="usd"))
    rows = {r["config"]: r for r in found["rows"]}
    assert rows["small"]["accuracy"] < 0.9 <= rows["medium"]["accuracy"] < rows["large"]["accuracy"] == 1.0
    for r in found["rows"]:  # the bound is Clopper-Pearson's on the evaluation rows
        assert r["accuracy_lower"] == pytest.approx(lower_bound(round(r["accuracy"] * 60), 60, 0.05))
        assert r["meets_target"] == (r["accuracy_lower"] >= 0.75)
    assert not rows["small"]["meets_target"]  # about 75% right: its bound is below 0.75
    assert found["met"] and found["chosen"] == "medium"
    assert rows["medium"]["usd_per_row"] < rows["large"]["usd_per_row"]
    assert rows["medium"]["pareto"] and rows["large"]["pareto"] and not rows["medium+vote3"]["pareto"]
    # the forecast of the search, from three measured rows per model and strategy, is what the search then
    # computed, and the cache hits it forecast are those the search had
    assert found["spent"]["calls"] == planned["search"]["calls"]
    assert found["cached"]["calls"] == planned["cached"]["calls"] == 6 * 60
    assert found["spent"]["cost_usd"] == pytest.approx(planned["search"]["cost_usd"], rel=0.25)
    program = found["program"]
    assert program(row="text: msg 7 about things").label == "ham"


def test_bootstrap_is_forecast_from_its_own_bound_with_the_large_model_as_teacher(fakes):
    t = task(fakes, target=0.75)
    configs = s.configurations(["small"], ["single"], ["boot"])
    planned = run_sync(s.forecast(t, configs))
    assert set(planned["per_row"]) == {"small", "small+demos", "large"}  # the teacher is measured too
    found = run_sync(s.search(t, configs, planned, cost="usd"))
    assert 0.75 * planned["search"]["calls"] <= found["spent"]["calls"] <= planned["search"]["calls"]
    assert found["spent"]["cost_usd"] == pytest.approx(planned["search"]["cost_usd"], rel=0.25)


@pytest.fixture
def local(isolated_home, bag_of_words_embeddings):
    """The CPU-spending fakes (``LocalFake``: loading, prompt reading with a prompt cache, generation)."""
    module = _fakes()
    before = compound.get_settings()
    models = module.register_local()
    yield models
    compound.configure(small=before.small, medium=before.medium, large=before.large, prices=before.prices)


def _cpu(found, config):
    return next(r for r in found["rows"] if r["config"] == config)["cpu_s_per_row"]


def test_the_cpu_forecast_comes_from_measured_rows_of_each_strategy_not_n_times_a_call(local):
    # a vote's samples share one prompt, which a local model reads once: three votes cost far less than three
    # calls, so a forecast of N times one measured call would be about twice what the search spends
    t = s.Task.split(pd.DataFrame(_fakes().rows(60)), "text", "label", target=0.5, evaluate=30, train=6)
    configs = s.configurations(["small", "large"], ["single", "vote3"], ["none"])
    with configured(cache=False):
        planned = run_sync(s.forecast(t, configs))
        found = run_sync(s.search(t, configs, planned))
    assert _cpu(found, "large+vote3") < 2 * _cpu(found, "large")  # the fake reads a vote's prompt once
    forecast = {r["config"]: r["search"] for r in planned["configs"]}
    for row in found["rows"]:
        assert forecast[row["config"]]["cpu_s"] == pytest.approx(row["cpu_s_per_row"] * 30, rel=0.25), row["config"]
    assert found["spent"]["cpu_s"] == pytest.approx(planned["search"]["cpu_s"], rel=0.25)
    assert found["spent"]["calls"] == planned["search"]["calls"] == 30 * (1 + 3) * 2
    # loading the models is the probe's one-time cost, in what the probe spent, not in the search's forecast
    assert planned["probe_spent"]["cpu_s"] >= 0.1 + 0.4
    assert found["spent"]["cpu_s"] < planned["search"]["cpu_s"] * 1.25 and found["cached"]["calls"] == 0


def test_the_forecast_counts_the_cache_hits_the_search_makes_on_its_own_calls(local):
    # with the cache on, the single configuration, the vote's greedy candidate and the repair's first attempt
    # are one request per row: the forecast states what the search computes and what its cache answers
    t = s.Task.split(pd.DataFrame(_fakes().rows(60)), "text", "label", target=0.5, evaluate=30, train=6)
    configs = s.configurations(["small"], ["single", "vote3", "repair"], ["none"])
    planned = run_sync(s.forecast(t, configs))
    found = run_sync(s.search(t, configs, planned))
    assert planned["cached"]["calls"] == found["cached"]["calls"] == 2 * 30
    assert found["spent"]["calls"] == planned["search"]["calls"] == 30 * (1 + 3 + 1) - 2 * 30
    assert found["spent"]["cpu_s"] == pytest.approx(planned["search"]["cpu_s"], rel=0.25)
    again = run_sync(s.search(t, configs, planned))  # a second run: every reply is cached now
    assert again["spent"]["calls"] == 0 and again["cached"]["calls"] == 30 * 5


def test_an_unreachable_target_says_so_with_the_best_found_and_its_cost(fakes):
    t = task(fakes, target=0.9)
    configs = s.configurations(["small", "medium"], ["single"], ["none"])
    found = run_sync(s.search(t, configs, run_sync(s.forecast(t, configs)), cost="usd"))
    assert not found["met"] and found["chosen"] is None
    assert found["best"]["config"] == "medium" and found["best"]["usd_per_row"] > 0


def test_a_target_no_evaluation_could_certify_is_refused_before_any_call(fakes):
    with pytest.raises(ConfigurationError, match="evaluate on more rows or lower the target"):
        task(fakes, target=0.99, evaluate=60)
    with pytest.raises(ConfigurationError, match="labelled rows"):
        task(fakes, target=0.8, n=50, evaluate=60)
    with pytest.raises(ConfigurationError, match="unknown strategy"):
        s.configurations(["small"], ["vote1"], ["none"])
    no_train = task(fakes, target=0.8, train=0)
    with pytest.raises(ConfigurationError, match="--train"):
        run_sync(s.forecast(no_train, s.configurations(["small"], ["single"], ["knn"])))


def test_the_callers_budget_stops_the_search_and_keeps_what_was_scored(fakes):
    t = task(fakes, target=0.75)
    configs = s.configurations(["small", "medium", "large"], ["single"], ["none"])
    planned = run_sync(s.forecast(t, configs))
    with compound.budget(calls=100):
        found = run_sync(s.search(t, configs, planned, cost="usd"))
    assert found["stopped"] and "budget" in found["stopped"]
    assert 1 <= len(found["rows"]) < 3
    assert found["spent"]["calls"] <= 100  # the budget caps the calls that reach a model


# ---- the command, through the console script -------------------------------------------------------------


def test_cli_forecasts_then_searches_saves_the_program_and_reports_an_unreachable_target(compound_cli, tmp_path):
    data = tmp_path / "rows.csv"
    pd.DataFrame(_fakes().rows(160)).to_csv(data, index=False)
    env = {"OPTIMIZE_FAKES": "1", "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")])}
    base = ["optimize", "--data", data, "--input", "text", "--label", "label", "--evaluate", "60", "--train", "20"]
    base += ["--strategies", "single,vote3", "--optimizers", "none", "--cost", "usd"]
    dry = compound_cli(*base, "--target", "0.75", "--dry-run", "--json", tmp_path / "dry.json", env=env)
    assert dry.returncode == 0, dry.stderr
    # 3 models x (1 + 3 votes) x 60 rows, less the votes' greedy candidates: the single calls, cached
    assert "forecast of the search: 540 calls" in dry.stdout and "less 180 calls its own cache" in dry.stdout
    assert not (tmp_path / "optimized.json").exists()
    spent = json.loads((tmp_path / "dry.json").read_text())
    # 1 warm-up row and 3 measured rows of each model and strategy: 3 models x 4 rows x (1 + 3 votes)
    assert "rows" not in spent and spent["forecast"]["probe_spent"]["calls"] == 48

    save = tmp_path / "optimized.json"
    done = compound_cli(*base, "--target", "0.75", "--save", save, "--json", tmp_path / "run.json", env=env)
    assert done.returncode == 0, done.stderr
    assert "chose medium" in done.stdout and f"saved {save}" in done.stdout
    state = json.loads(save.read_text())
    assert "opt-medium" in json.dumps(state)
    result = json.loads((tmp_path / "run.json").read_text())
    assert [r["config"] for r in result["rows"] if r["pareto"]] == ["small", "medium", "large"]

    failed = compound_cli(*base, "--models", "small,medium", "--target", "0.9", "--save", tmp_path / "x.json", env=env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "no configuration reached accuracy 0.9" in failed.stderr and "the best was medium" in failed.stderr
    assert not (tmp_path / "x.json").exists()
