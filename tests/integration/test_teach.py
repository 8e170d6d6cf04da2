"""Teaching on the real embedded models: kNN demos with MiniLM, and impute --auto on the penguins table."""

import pytest

from compound.optimize.auto import label_step
from compound.optimize.knn import KNNFewShot, KNNPredict

POS = ["I loved this film", "a wonderful, moving story", "great acting and a clever plot", "pure joy to watch"]
NEG = ["I hated this film", "a dull, tedious story", "wooden acting and a silly plot", "a chore to sit through"]


def test_knn_demos_make_the_small_model_follow_the_labelled_examples(small_model, tmp_path):
    pytest.importorskip("sentence_transformers", reason="needs the dense extra")
    train = [{"row": t, "label": "positive"} for t in POS] + [{"row": t, "label": "negative"} for t in NEG]
    step = label_step(["positive", "negative"], small_model)
    tuned = KNNFewShot(k=4).compile(step, train)
    tests = [("I loved this story", "positive"), ("I hated this plot", "negative"), ("great fun", "positive")]
    got = [tuned(row=t).label for t, _ in tests]
    assert sum(g == want for g, (_, want) in zip(got, tests, strict=True)) >= 2
    loaded = KNNPredict.load(tuned.save(tmp_path / "knn.json"), step.signature, model=small_model)
    assert [loaded(row=t).label for t, _ in tests] == got


def test_impute_auto_on_penguins_answers_most_cells_without_the_llm(small_model):
    pytest.importorskip("sklearn", reason="needs the evaluate extra")
    pytest.importorskip("palmerpenguins", reason="needs the demo extra")
    from compound.demo import FEATURES, load_penguins
    from compound.tables.jobs import process_table
    from compound.tables.operators import impute

    table = load_penguins().dropna(subset=FEATURES + ["sex"]).reset_index(drop=True)
    hidden = table.sample(n=30, random_state=1).index
    truth = table.loc[hidden, "sex"].copy()
    table.loc[hidden, "sex"] = None
    op = impute(table, "sex", input_columns=FEATURES, model=small_model, program="auto")
    filled = process_table(op, table).df
    assert op.setup["certified"]
    by = op.program.answered_by
    assert by["tabular"] > 15 and by["tabular"] + by["teacher"] == 30  # most cells without the LLM
    assert (filled.loc[hidden, "sex"] == truth).mean() >= 0.7  # the 135M teacher is weak on the rest
