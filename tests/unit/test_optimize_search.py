"""``compound optimize``'s search (``evaluate.search``) and command on scripted small, medium and large
models (tests/unit/optimize_site/optimize_fakes.py: wrong on every 4th, every 10th and no row; priced 1, 3
and 10 dollars per million tokens; 10 to 40 ms a call)."""

import json
import math
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


# ---- proxy: the embedding student in front of the model ------------------------------------------------------


@pytest.fixture
def student(monkeypatch):
    """The stand-in embedder (``optimize_fakes.embedder``), at ``cpu_s`` per text (default 4 ms)."""

    def use(cpu_s=0.004):
        monkeypatch.setattr("compound.optimize.students.embedding.embed_texts", _fakes().embedder(cpu_s))

    use()
    return use


def easy_task(fakes, target, easy=0.4, **kw):
    """200 rows, on 40% of which the words give the label away; 60 to learn from, 60 to evaluate."""
    df = pd.DataFrame(fakes.rows(200, easy=easy))
    return s.Task.split(df, "text", "label", target=target, delta=0.05, **{"evaluate": 60, "train": 60, **kw})


def test_a_certified_student_in_front_of_the_large_model_is_chosen_when_cheaper_and_within_the_target(
    fakes, student, tmp_path
):
    t = easy_task(fakes, target=0.8)
    configs = s.configurations(["small", "large"], ["single"], ["none", "proxy"])
    planned = run_sync(s.forecast(t, configs, cost="usd"))
    proxy = planned["proxy"]
    # learned on the 60 training rows only, out of fold: the kept answers are right at 0.8 with confidence 0.95
    assert proxy["train_rows"] == 60 and proxy["threshold"]["bound"] >= 0.8
    assert 0.4 <= proxy["escalated"] <= 0.8 and proxy["threshold"]["accepted"] == round(60 * (1 - proxy["escalated"]))
    assert proxy["fit"]["cpu_s"] >= 60 * 0.004 and planned["per_row"]["student"]["cpu_s"] >= 0.004
    found = run_sync(s.search(t, configs, planned, cost="usd"))
    rows = {r["config"]: r for r in found["rows"]}
    front, large = rows["large+proxy"], rows["large"]
    assert found["met"] and found["chosen"] == "large+proxy"
    assert front["accuracy_lower"] == pytest.approx(lower_bound(round(front["accuracy"] * 60), 60, 0.05))
    assert front["accuracy_lower"] >= 0.8
    # the model is paid only for the rows the student escalates: the share the cross-fit forecast
    assert front["calls_per_row"] == front["escalated"] == pytest.approx(proxy["escalated"], abs=0.15)
    assert front["usd_per_row"] < 0.8 * large["usd_per_row"] and front["one_time_cpu_s"] > 0
    # in front of the small model (wrong on every 4th row) the student is just as sure, but the rows it
    # escalates keep the cascade's accuracy bound under the target: not chosen
    assert rows["small+proxy"]["escalated"] == front["escalated"] and not rows["small+proxy"]["meets_target"]
    # the forecast: each configuration's calls (computed or from the cache) and the whole search's dollars
    forecast = {r["config"]: r["search"]["calls"] + r.get("cached", {}).get("calls", 0) for r in planned["configs"]}
    for name, row in rows.items():
        assert forecast[name] == pytest.approx(row["calls_per_row"] * 60, rel=0.25), name
    assert found["spent"]["calls"] == planned["search"]["calls"] == 120  # the cache: each row once per model
    assert found["spent"]["cost_usd"] == pytest.approx(planned["search"]["cost_usd"], rel=0.25)

    # the saved program is versioned JSON; it loads into the configuration's program and answers as it did
    path = found["program"].save(tmp_path / "chosen.json")
    state = json.loads(path.read_text())
    assert state["class"] == "compound.routing.cascade:Cascade" and state["parameters"]["proxies"]["proxy"]["heads"]
    loaded = s.build(s.Config("large", "single", "proxy"), t).load_state(state, str(path))
    texts = [f"text: {x}" for x in t.evaluate["text"][:12]]
    assert [loaded(row=x)["label"] for x in texts] == [found["program"](row=x)["label"] for x in texts]
    assert loaded.answered_by["proxy"] > 0  # the student answered some rows without the model


def test_a_student_that_costs_more_than_the_calls_it_saves_is_not_chosen(local, student):
    # 15 ms of CPU per row for the student: more than the small model's call, less than the large model's
    student(0.015)
    t = easy_task(_fakes(), target=0.6)
    configs = s.configurations(["small", "large"], ["single"], ["none", "proxy"])
    with configured(cache=False):
        planned = run_sync(s.forecast(t, configs))
        found = run_sync(s.search(t, configs, planned))
    rows = {r["config"]: r for r in found["rows"]}
    assert rows["small"]["meets_target"] and rows["small+proxy"]["meets_target"]
    assert rows["small+proxy"]["cpu_s_per_row"] > rows["small"]["cpu_s_per_row"]
    assert found["chosen"] == "small"
    assert rows["large+proxy"]["cpu_s_per_row"] < rows["large"]["cpu_s_per_row"]
    # the forecast said so too, from the measured student and models, and covered the search's CPU
    per_row = {r["config"]: r["job"]["cpu_s"] / t.job_rows for r in planned["configs"]}
    assert per_row["small+proxy"] > per_row["small"] and per_row["large+proxy"] < per_row["large"]
    assert found["spent"]["cpu_s"] == pytest.approx(planned["search"]["cpu_s"], rel=0.25)
    assert found["spent"]["calls"] == pytest.approx(planned["search"]["calls"], rel=0.25)


def test_a_student_certified_for_no_row_is_never_asked_and_the_model_alone_is_chosen(fakes, student):
    t = easy_task(fakes, target=0.8, easy=0.0)  # the words say nothing: no confidence the test can certify
    configs = s.configurations(["large"], ["single"], ["none", "proxy"])
    planned = run_sync(s.forecast(t, configs, cost="usd"))
    assert planned["proxy"]["escalated"] == 1.0 and planned["proxy"]["threshold"]["value"] is None
    assert planned["per_row"]["student"]["cpu_s"] == 0  # never asked, so nothing to measure per row
    found = run_sync(s.search(t, configs, planned, cost="usd"))
    rows = {r["config"]: r for r in found["rows"]}
    assert rows["large+proxy"]["escalated"] == 1.0 and rows["large+proxy"]["calls_per_row"] == 1.0
    assert rows["large+proxy"]["usd_per_row"] == rows["large"]["usd_per_row"]
    assert found["chosen"] == "large"  # as cheap per row, as accurate, and nothing to learn


def test_a_proxy_needs_training_rows_of_two_labels(fakes, student):
    df = pd.DataFrame(fakes.rows(200, easy=0.4))
    t = s.Task.split(df, "text", "label", target=0.8, evaluate=60, train=1)
    with pytest.raises(ConfigurationError, match="at least two labels"):
        run_sync(s.forecast(t, s.configurations(["large"], ["single"], ["proxy"])))


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
    # the whole forecast is kept beside what was spent (the search's part once overwrote it)
    assert result["forecast"]["probe_spent"]["calls"] == 48 and result["forecast"]["search"]["calls"] == 540

    failed = compound_cli(*base, "--models", "small,medium", "--target", "0.9", "--save", tmp_path / "x.json", env=env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "no configuration reached accuracy 0.9" in failed.stderr and "the best was medium" in failed.stderr
    assert not (tmp_path / "x.json").exists()


def test_cli_searches_a_student_in_front_of_the_model_and_saves_the_cascade(compound_cli, tmp_path, student):
    data = tmp_path / "rows.csv"
    pd.DataFrame(_fakes().rows(200, easy=0.4)).to_csv(data, index=False)
    env = {"OPTIMIZE_FAKES": "1", "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")])}
    save = tmp_path / "chosen.json"
    done = compound_cli(
        *["optimize", "--data", data, "--input", "text", "--label", "label", "--evaluate", "60", "--train", "60"],
        *["--models", "large", "--strategies", "single", "--optimizers", "none,proxy", "--cost", "usd"],
        *["--target", "0.8", "--save", save, "--json", tmp_path / "run.json"],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "large+proxy" in done.stdout and "chose large+proxy" in done.stdout
    result = json.loads((tmp_path / "run.json").read_text())
    assert 0 < result["proxy"]["escalated"] < 1 and result["proxy"]["threshold"]["bound"] >= 0.8
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["large+proxy"]["calls_per_row"] < 1
    assert rows["large+proxy"]["usd_per_row"] < rows["large"]["usd_per_row"]
    # the saved cascade loads into the configuration's program, in another process than the one that saved it
    t = s.Task.split(pd.read_csv(data), "text", "label", target=0.8, evaluate=60, train=60)
    program = s.build(s.Config("large", "single", "proxy"), t).load_state(json.loads(save.read_text()), str(save))
    assert math.isfinite(program.thresholds[0].value) and program.stages[0].classifier.trained
