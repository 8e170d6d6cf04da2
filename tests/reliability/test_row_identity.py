"""Every row gets the output of its own input, whatever its index label: written as an attacker would.

``pd.concat`` repeats labels by default; a MultiIndex labels rows with tuples; labels may be floats, dates,
None or NaN. The fake model answers ``R(<first value of the row>)``, so an output attached to another row
shows. Rows are placed by position in the frame, with and without a job id, resume included."""

import warnings

import numpy as np
import pandas as pd
import pytest

import compound
import compound.tables.accessor  # noqa: F401  (registers df.compound)
from compound.tables.jobs import JobStopped, job_store, process_table
from compound.tables.operators import OPERATORS

FAKE = {"model": "relio-fake"}


def names(*values):
    return pd.DataFrame({"name": list(values)})


def concat_frame():
    """The issue's case: two frames concatenated with pandas' defaults (labels 0, 1, 0, 1)."""
    return pd.concat([names("alpha", "beta"), names("gamma", "delta")])


def expect_own(df, column="out"):
    assert list(df[column]) == [f"R({v})" for v in df["name"]], df


INDEXES = {
    "concat duplicate labels": lambda df: df.set_axis([0, 1, 0, 1]),
    "one label for every row": lambda df: df.set_axis([7, 7, 7, 7]),
    "MultiIndex": lambda df: df.set_axis(pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1), ("a", 1)])),
    "float labels": lambda df: df.set_axis([1.5, 0.1, 1.5, 2.0]),
    "NaN labels": lambda df: df.set_axis([np.nan, 1.0, np.nan, np.nan]),
    "None and object labels": lambda df: df.set_axis([None, "x", None, ("t", 1)]),
    "repeated dates": lambda df: df.set_axis(pd.to_datetime(["2024-01-01"] * 2 + ["2024-01-02"] * 2)),
    "categorical labels": lambda df: df.set_axis(pd.CategoricalIndex(["u", "v", "u", "v"])),
    "reversed range": lambda df: df.set_axis([3, 2, 1, 0]),
    "labels that are other rows' positions": lambda df: df.set_axis([2, 3, 0, 1]),
}


@pytest.mark.parametrize("make", INDEXES.values(), ids=INDEXES.keys())
def test_map_gives_each_row_its_own_output_whatever_the_index(relio_fake, make):
    df = make(names("alpha", "beta", "gamma", "delta"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no pandas warning either
        out = df.compound.map("out", "summarise", **FAKE)
    expect_own(out)
    assert out.index.equals(df.index)


def test_the_issues_concat_case_without_a_job_id(relio_fake):
    out = concat_frame().compound.map("out", "summarise", **FAKE)
    assert dict(zip(out["name"], out["out"], strict=True)) == {
        n: f"R({n})" for n in ["alpha", "beta", "gamma", "delta"]
    }


def test_the_issues_concat_case_with_a_job_id_and_a_resume(relio_fake):
    df = pd.concat([names(*[f"a{i}" for i in range(6)]), names(*[f"b{i}" for i in range(6)])])
    with pytest.raises(JobStopped), compound.budget(calls=4):
        df.compound.map("out", "summarise", job_id="dup", **FAKE)
    assert 0 < len(job_store().done("dup")) < 12
    out = df.compound.map("out", "summarise", job_id="dup", **FAKE)  # the resume
    expect_own(out)


def test_a_resume_over_the_rows_shuffled_and_relabelled(relio_fake):
    df = names(*[f"n{i}" for i in range(10)])
    op = OPERATORS["map"](df, "out", "summarise", **FAKE)
    with pytest.raises(JobStopped), compound.budget(calls=3):
        process_table(op, df, job_id="shuffle")
    again = df.sample(frac=1, random_state=1).set_axis([0] * 10)  # every label the same
    result = process_table(OPERATORS["map"](again, "out", "summarise", **FAKE), again, job_id="shuffle")
    expect_own(result.df)
    assert result.from_checkpoint >= 3


def test_filter_keeps_the_rows_that_said_yes_under_duplicate_labels(relio_fake):
    df = pd.DataFrame({"name": ["a", "b", "c", "d"], "keep": ["no", "yes", "yes", "no"]}, index=[0, 1, 0, 1])
    out = df.compound.filter("keep it?", **FAKE)
    assert list(out["name"]) == ["b", "c"]


def test_classify_under_a_multiindex(relio_fake):
    df = pd.DataFrame(
        {"name": ["a", "b", "c"], "label": ["neg", "pos", "neg"]},
        index=pd.MultiIndex.from_tuples([("x", 1), ("x", 1), ("y", 2)]),
    )
    out = df.compound.classify("sentiment", ["pos", "neg"], input_columns=["name", "label"], **FAKE)
    assert list(out["sentiment"]) == ["neg", "pos", "neg"]


def test_extract_under_nan_labels(relio_fake):
    df = pd.DataFrame({"text": ["short", "a much longer text"]}, index=[np.nan, np.nan])
    out = df.compound.extract("text", {"n": int}, **FAKE)
    assert list(out["n"]) == [len("text: short"), len("text: a much longer text")]  # the fake: the row's length


def test_impute_fills_the_right_cells_when_filled_and_empty_rows_share_labels(relio_fake):
    df = pd.DataFrame(
        {"name": ["a", "b", "c", "d"], "city": ["Paris", None, "Rome", None]},
        index=[0, 0, 1, 1],
    )
    out = df.compound.impute("city", input_columns=["name"], **FAKE)
    assert list(out["city"])[0::2] == ["Paris", "Rome"]  # the filled cells are untouched
    assert all(isinstance(v, str) and v for v in out["city"])


def test_describe_by_a_column_holding_nan(relio_fake):
    df = pd.DataFrame({"group": ["g1", np.nan, "g1", np.nan], "name": ["a", "b", "c", "d"]})
    out = df.compound.describe("d", by="group", input_columns=["name"], **FAKE)
    assert len(out) == 2 and out["d"].notna().all()
    assert sorted(out["d"]) == ["R(a)", "R(b)"]  # each group's own first row


def test_identical_rows_under_one_label_share_one_call_and_both_get_it(relio_fake):
    df = names("same", "same", "other").set_axis([5, 5, 5])
    out = df.compound.map("out", "summarise", **FAKE)
    expect_own(out)
    assert len(relio_fake.requests) == 2


def test_the_run_reports_outputs_by_position_not_by_label(relio_fake):
    df = pd.DataFrame({"name": ["a", "bb"]}, index=["k", "k"])
    result = process_table(OPERATORS["extract"](df, "name", {"n": int}, **FAKE), df)
    assert result.outputs == {0: {"n": len("name: a")}, 1: {"n": len("name: bb")}}


def test_the_accessor_leaves_pandas_sem_alone():
    import subprocess
    import sys

    code = "import pandas as pd, compound.tables.accessor; df = pd.DataFrame({'x': [1.0, 2.0, 3.0, 4.0]}); "
    code += "print(df.sem()['x'], callable(df.compound.map))"
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr  # no UserWarning about an overridden attribute
    sem, has_map = proc.stdout.split()
    assert float(sem) == pytest.approx(pd.Series([1.0, 2.0, 3.0, 4.0]).std() / 2) and has_map == "True"
