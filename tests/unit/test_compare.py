"""``compound compare``: dominated configurations (``evaluate.report.dominated_by``, shared with the
configuration search), ``auto`` run by the staged planner, and the command through the console script.
Models are scripted (tests/unit/optimize_site/optimize_fakes.py: wrong on every 4th, every 10th and no
row; 10 to 40 ms a call)."""

import json
import math
import os
import runpy
from pathlib import Path

import pandas as pd
import pytest

import compound
from compound.core.concurrency import run_sync
from compound.evaluate.compare import compare
from compound.evaluate.report import dominated_by, mark_dominated, pareto_front

SITE = Path(__file__).parent / "optimize_site"


# ---- the pure function -----------------------------------------------------------------------------------


def test_a_point_is_dominated_by_one_no_costlier_and_no_worse_and_strictly_better_on_one():
    # (accuracy, cost): 1 is cheaper at the same accuracy as 0; 2 costs as much as 1 and scores more
    points = [(0.8, 2.0), (0.8, 1.0), (0.9, 1.0), (0.95, 5.0)]
    assert dominated_by(points) == [2, 2, None, None]
    assert pareto_front(points) == [False, False, True, True]


def test_equal_points_dominate_neither_and_equal_cost_goes_to_the_higher_score():
    assert dominated_by([(0.8, 1.0), (0.8, 1.0)]) == [None, None]  # a tie on both: neither is better
    assert dominated_by([(0.7, 1.0), (0.8, 1.0)]) == [1, None]  # same cost, higher accuracy
    assert dominated_by([(0.8, 1.0), (0.8, 0.5)]) == [1, None]  # same accuracy, lower cost


def test_the_dominator_named_is_the_best_of_those_that_dominate():
    # 0 is dominated by 1, 2 and 3; 3 has the highest accuracy; between equal accuracy the cheaper wins
    points = [(0.5, 10.0), (0.6, 1.0), (0.7, 3.0), (0.7, 2.0)]
    assert dominated_by(points) == [3, None, 3, None]


def test_a_single_configuration_and_none_at_all():
    assert dominated_by([(0.4, 9.0)]) == [None] and pareto_front([(0.4, 9.0)]) == [True]
    assert dominated_by([]) == [] and pareto_front([]) == []


def test_a_missing_cost_or_score_is_compared_with_nothing():
    points = [(0.9, None), (0.5, 1.0), (None, 0.1), (0.6, math.nan), (0.4, 2.0)]
    # the 0.9 of unknown cost does not dominate the others, nor is it dominated; only 4 is (by 1)
    assert dominated_by(points) == [None, None, None, None, 1]
    assert pareto_front(points) == [False, True, False, False, False]


def test_mark_dominated_names_the_dominating_row_and_leaves_rows_without_the_cost_unmarked():
    rows = [
        {"config": "small", "accuracy": 0.6, "cost": 1.0},
        {"config": "vote5", "accuracy": 0.6, "cost": 5.0},
        {"config": "large", "accuracy": 0.9, "cost": 4.0},
        {"config": "remote", "accuracy": 0.95},  # no cost measured
    ]
    mark_dominated(rows, "accuracy", "cost")
    # small and large both dominate vote5; large, the more accurate, is named
    assert [r["dominated_by"] for r in rows] == [None, "large", None, None]
    assert [r["pareto"] for r in rows] == [True, False, True, False]


# ---- compare, in process --------------------------------------------------------------------------------


@pytest.fixture
def fakes(isolated_home, bag_of_words_embeddings):
    module = runpy.run_path(str(SITE / "optimize_fakes.py"))
    before = compound.get_settings()
    module["register"]()
    yield module
    compound.configure(small=before.small, medium=before.medium, large=before.large, prices=before.prices)


def test_compare_marks_dominated_configurations_and_runs_auto_through_the_planner(fakes):
    df = pd.DataFrame(fakes["rows"](120))
    result = run_sync(compare(df, "text", "label", ["small", "vote3", "large", "auto"], limit=60, calibration=0))
    rows = {r["config"]: r for r in result["rows"]}
    assert result["cost"] == "amortised_cpu_s_per_row"
    for r in rows.values():
        assert r["amortised_cpu_s_per_row"] == pytest.approx((r["cpu_s"] + r["one_time_cpu_s"]) / 60)
    # vote3: three samples of the same scripted small model, the same answers, three times its calls
    assert rows["vote3"]["accuracy"] == rows["small"]["accuracy"] and rows["vote3"]["calls"] == 3 * 60
    assert rows["vote3"]["dominated_by"] is not None and not rows["vote3"]["pareto"]
    for r in rows.values():  # whatever dominates a row costs no more and scores no less, one strictly
        if r["dominated_by"]:
            d = rows[r["dominated_by"]]
            assert d["accuracy"] >= r["accuracy"] and d["amortised_cpu_s_per_row"] <= r["amortised_cpu_s_per_row"]
            assert (d["accuracy"], d["amortised_cpu_s_per_row"]) != (r["accuracy"], r["amortised_cpu_s_per_row"])
        else:
            assert r["pareto"]
    # auto is the staged planner on the 60 evaluated rows: a job this short is not taught; its decisions
    planned = result["details"]["auto"]
    assert planned["rows"] == 60 and planned["plan"].startswith("too short to teach")
    assert planned["teacher_labelled"] == 32 and sum(planned["share_by_stage"].values()) == pytest.approx(1.0)
    assert planned["share_by_stage"]["teacher (label)"] == pytest.approx(32 / 60)
    assert result["auto_report"]["allowance"]["rows"] == 60
    assert rows["auto"]["accuracy"] == rows["large"]["accuracy"] == 1.0  # every row has the teacher's answer
    assert json.loads(rows["auto"]["answered_by"]) == {"teacher (label)": 32, "teacher": 28}
    assert result["calibration_rows"] == 0  # auto learns from the teacher on the job, not on calibration rows


def test_compare_auto_reports_the_stages_the_planner_trained_and_their_share(fakes, monkeypatch):
    from compound.optimize.planner import Costs

    # local work costs little here (hashed embeddings): priors that say so, and a teacher that burns CPU,
    # so that a 300-row job pays for an embedding student
    monkeypatch.setattr(
        "compound.optimize.staged.PRIORS", Costs(teacher=0.0, embed=1e-4, embed_load=0.01, fit_load=0.2)
    )
    from compound.optimize.students import embedding

    monkeypatch.setattr("compound.optimize.staged.embed_texts", embedding.embed_texts)  # the bag of words
    import time

    import sklearn.cluster  # noqa: F401  # imported once, before the measured job (as in test_staged)
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    def burning(request):
        c0 = time.process_time()
        while time.process_time() - c0 < 0.02:
            pass
        return fakes["answer"]("opt-large")(request)

    compound.register_model("burning-large", compound.ScriptedBackend(burning, model="burning-large"))
    words = {"spam": "win a cash prize now", "ham": "see you at lunch"}  # what a student can learn from
    df = pd.DataFrame([{"text": f"{r['text']}: {words[r['label']]}", "label": r["label"]} for r in fakes["rows"](400)])
    result = run_sync(
        compare(df, "text", "label", ["large", "auto"], limit=400, calibration=0, large="burning-large", target=0.9)
    )
    planned = result["details"]["auto"]
    assert planned["plan"] == "taught: embedding student", planned
    student = planned["stages"]["embedding student"]
    assert student["trained"] and student["certified"] and student["answers"] > 0
    shares = planned["share_by_stage"]
    assert shares["embedding student"] == pytest.approx(student["answers"] / 400)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert "fine-tuned encoder" in planned["stages"]  # tried: trained, or why not
    rows = {r["config"]: r for r in result["rows"]}
    assert rows["auto"]["accuracy"] >= 0.95 and rows["auto"]["calls"] < 400 * (1 - shares["embedding student"]) + 1


# ---- the command ------------------------------------------------------------------------------------------


def test_cli_prints_and_writes_which_configuration_dominates_which(compound_cli, tmp_path, fakes):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in fakes["rows"](80)))
    env = {"OPTIMIZE_FAKES": "1", "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "compare.json"
    done = compound_cli(
        "compare", "--data", data, "--input", "text", "--label", "label", "--configs", "small,vote3,large,auto",
        "--limit", "40", "--small", "opt-small", "--large", "opt-large", "--json", out, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    rows = {r["config"]: r for r in result["rows"]}
    vote3 = rows["vote3"]
    assert vote3["dominated_by"] in rows
    assert f"vote3 is dominated by {vote3['dominated_by']}: accuracy" in done.stdout
    assert "dominated_by" in done.stdout  # the table's column
    assert "auto planner: " in done.stdout and '"plan": "too short to teach' in done.stdout
    assert result["details"]["auto"]["share_by_stage"]
    assert (tmp_path / "compare.png").exists() and (tmp_path / "compare.html").exists()
