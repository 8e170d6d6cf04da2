"""The embedding proxy and a table job on the real embedded models."""

import asyncio

import pandas as pd
import pytest


def test_embedding_proxy_learns_and_reports_confidence():
    pytest.importorskip("sklearn", reason="needs the evaluate extra")
    pytest.importorskip("sentence_transformers", reason="needs the evaluate extra")
    from compound.optimize.students.stage import ProxyStage

    pos = [
        "I loved this film",
        "what a wonderful day",
        "great service, thank you",
        "this is excellent",
        "so happy with it",
        "fantastic meal",
    ]
    neg = [
        "I hated this film",
        "what an awful day",
        "terrible service, never again",
        "this is dreadful",
        "so angry about it",
        "disgusting meal",
    ]
    stage = ProxyStage().fit(pos + neg, ["pos"] * 6 + ["neg"] * 6)
    (label_a, conf_a), (label_b, conf_b) = asyncio.run(
        stage.answer(["an excellent, lovely experience", "a horrible, awful mess"])
    )
    assert (label_a, label_b) == ("pos", "neg")
    assert 0.5 < conf_a <= 1 and 0.5 < conf_b <= 1
    state = stage.classifier.state()
    assert len(state["heads"]) == 1 and len(state["heads"][0]["coef"]) == 2 and state["labels"] == ["neg", "pos"]
    from compound.retrieval.dense import best_embedder

    assert state["embedder"] == best_embedder()  # all-mpnet-base-v2 where make test installed it


def test_cli_table_impute_on_the_embedded_model(tmp_path, compound_cli):
    df = pd.DataFrame(
        {
            "species": ["Adelie", "Gentoo", "Adelie", "Gentoo", "Adelie"],
            "body_mass_g": [3400, 5700, 4300, 4800, 3300],
            "sex": ["female", "male", "male", None, None],
        }
    )
    df.to_csv(tmp_path / "p.csv", index=False)
    out = compound_cli(
        "table", "impute", tmp_path / "p.csv", "--column", "sex", "--out", tmp_path / "filled.csv", "--no-progress"
    )
    assert out.returncode == 0, out.stderr
    filled = pd.read_csv(tmp_path / "filled.csv")
    assert list(filled.columns) == list(df.columns)
    assert filled["sex"].notna().all() and set(filled["sex"]) <= {"male", "female"}
    assert filled["sex"].tolist()[:3] == ["female", "male", "male"]  # known cells untouched
    assert "2 computed" in out.stdout


def test_cross_fit_gives_every_row_an_out_of_fold_answer():
    pytest.importorskip("sklearn", reason="needs the evaluate extra")
    pytest.importorskip("sentence_transformers", reason="needs the evaluate extra")
    from compound.optimize.students.stage import ProxyStage

    texts = [f"I loved it, great number {i}" for i in range(6)] + [f"I hated it, awful number {i}" for i in range(6)]
    labels = ["pos"] * 6 + ["neg"] * 6
    stage = ProxyStage()
    oof = stage.cross_fit(texts, labels)
    assert len(oof) == len(texts) and sum(a == g for (a, _), g in zip(oof, labels, strict=False)) >= 10
    assert len(stage.classifier.heads) == 4  # the four fold models are what the stage deploys
