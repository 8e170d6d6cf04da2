"""The linear students (embedding proxy, tabular student): what is certified is what is deployed."""

import json

import numpy as np
import pytest

from compound.core.errors import InputError
from compound.core.usage import track_usage
from compound.optimize.students.embedding import EmbeddingClassifier
from compound.optimize.students.linear import LinearClassifier
from compound.routing.calibrate import learn_threshold


class Points(LinearClassifier):
    """Texts are indices into a fixed feature matrix: the linear head alone, on data we control."""

    C = 4.0
    class_weight = "balanced"

    def __init__(self, x):
        super().__init__()
        self.x = x
        self.seen: list[int] = []

    def features(self, texts):
        self.seen.append(len(texts))
        return self.x[[int(t) for t in texts]]


def noisy_task(seed, n, dim=64, separation=2.0):
    """Three classes whose means differ on three of many dimensions, under unit noise: 200 rows teach a
    student that is often wrong, and overconfident when refitted on all of them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    means = np.zeros((3, dim))
    means[0, 0], means[1, 1], means[2, 2] = separation, separation, separation
    return means[y] + rng.normal(0, 1.0, (n, dim)), np.array(["a", "b", "c"])[y]


def accepted_agreement(clf, x_ids, y, threshold):
    answers = clf.predict([str(i) for i in x_ids])
    kept = [(a == g) for (a, c), g in zip(answers, y, strict=True) if c >= threshold]
    return (sum(kept) / len(kept)) if kept else 1.0, len(kept)


def test_the_deployed_fold_average_keeps_the_certified_agreement_on_fresh_rows():
    """Over many calibration draws, the rows the deployed classifier accepts at the learned threshold
    agree at the target on fresh rows, failing at most about delta of the time. A refit on all rows (the
    old deployment) is more confident than the folds that were certified, and fails more often."""
    target, delta, draws, fails, refit_fails, certified = 0.8, 0.1, 30, 0, 0, 0
    for seed in range(draws):
        x, y = noisy_task(seed, 200 + 3000)
        cal, fresh = list(range(200)), list(range(200, 3200))
        clf = Points(x)
        oof = clf.cross_fit([str(i) for i in cal], list(y[cal]))
        th = learn_threshold(
            [c for _, c in oof], [a == g for (a, _), g in zip(oof, y[cal], strict=True)], target, delta
        )
        if not np.isfinite(th.value):
            continue
        certified += 1
        assert len(clf.heads) == 4  # the four fold heads are what answers from now on
        agreement, kept = accepted_agreement(clf, fresh, y[fresh], th.value)
        fails += agreement < target
        refit = Points(x).fit([str(i) for i in cal], list(y[cal]))
        refit_agreement, refit_kept = accepted_agreement(refit, fresh, y[fresh], th.value)
        refit_fails += refit_agreement < target
    assert certified >= draws // 2, "the task should be learnable enough to certify most draws"
    assert fails <= delta * certified + 1
    assert refit_fails > delta * certified + 1 > fails  # the reason for deploying the fold heads


def test_cross_fit_computes_features_once_and_answers_every_row_out_of_fold():
    x, y = noisy_task(0, 120, separation=8.0)
    clf = Points(x)
    with track_usage() as usage:
        oof = clf.cross_fit([str(i) for i in range(120)], list(y))
    assert clf.seen == [120]  # one feature pass for every row, not one per fold
    assert usage.total.local >= 1 and usage.total.calls == 0 and usage.total.cpu_s > 0  # local work, not calls
    assert len(oof) == 120 and np.mean([a == g for (a, _), g in zip(oof, y, strict=True)]) > 0.9


def test_a_fold_without_two_labels_answers_with_no_confidence_and_adds_no_head():
    x = np.eye(6)
    clf = Points(x)
    oof = clf.cross_fit([str(i) for i in range(6)], ["a", "a", "a", "a", "b", "a"], folds=4)
    # fold 0 holds rows 0, 4 (the only "b") and 5: its training rows are all "a", so it cannot learn
    assert [c for _, c in oof][0] == [c for _, c in oof][4] == [c for _, c in oof][5] == 0.0
    assert all(c > 0 for i, (_, c) in enumerate(oof) if i not in (0, 4, 5))
    assert len(clf.heads) == 3 and all(len(h["coef"]) == 2 for h in clf.heads)
    with pytest.raises(InputError, match="two distinct labels"):
        Points(x).cross_fit([str(i) for i in range(6)], ["a"] * 6)


def test_fold_heads_round_trip_through_json_and_a_single_head_save_still_loads(monkeypatch):
    vectors = {f"t{i}": np.eye(7)[i % 7] for i in range(42)}
    monkeypatch.setattr(
        "compound.optimize.students.embedding.embed_texts",
        lambda texts, model_path=None: np.stack([vectors[t] for t in texts]),
    )
    texts = list(vectors)
    labels = ["x" if i % 7 < 3 else "y" for i in range(42)]
    clf = EmbeddingClassifier(embedder="all-minilm-l6-v2")
    clf.cross_fit(texts, labels)
    state = json.loads(json.dumps(clf.state()))
    assert len(state["heads"]) == 4
    again = EmbeddingClassifier()
    again.load_state(state)
    assert again.predict(texts) == clf.predict(texts)
    single = {"labels": state["labels"], "coef": state["heads"][0]["coef"], "intercept": state["heads"][0]["intercept"]}
    older = EmbeddingClassifier()
    older.load_state(single)  # the format before fold heads: one head
    assert len(older.heads) == 1 and [a for a, _ in older.predict(texts)] == labels


def test_a_saved_cascade_with_a_malformed_student_is_refused_and_nothing_is_loaded(tmp_path, monkeypatch):
    from compound import ScriptedBackend
    from compound.core.errors import ConfigurationError
    from compound.optimize.students.stage import ProxyStage
    from compound.routing.cascade import Cascade, LLMStage

    vectors = {f"t{i}": np.eye(7)[i % 7] for i in range(42)}
    monkeypatch.setattr(
        "compound.optimize.students.embedding.embed_texts",
        lambda texts, model_path=None: np.stack([vectors[t] for t in texts]),
    )
    texts, labels = list(vectors), ["x" if i % 7 < 3 else "y" for i in range(42)]

    def build():
        from compound.optimize.auto import label_step

        large = ScriptedBackend(lambda r: json.dumps({"label": "x"}), model="large")
        return Cascade([ProxyStage("proxy"), LLMStage(label_step(["x", "y"], large), "label", "teacher")], "label")

    cascade = build()
    cascade.stages[0].cross_fit(texts, labels)
    cascade.save(tmp_path / "auto.json")
    state = json.loads((tmp_path / "auto.json").read_text())
    fresh = build()
    fresh.load_state(json.loads(json.dumps(state)))
    assert fresh.stages[0].classifier.predict(texts) == cascade.stages[0].classifier.predict(texts)

    head = state["parameters"]["proxies"]["proxy"]["heads"][1]
    head["coef"] = head["coef"][:1]  # one row for two labels
    untouched = build()
    with pytest.raises(ConfigurationError, match="1 coefficient rows and 2 intercepts for 2 labels"):
        untouched.load_state(state, "auto.json")
    assert not untouched.stages[0].classifier.trained
    head["coef"] = [[float("nan")] * 7, [0.0] * 7]  # json.loads reads NaN
    with pytest.raises(ConfigurationError, match="finite number"):
        untouched.load_state(json.loads(json.dumps(state)), "auto.json")


def test_a_sparse_head_fits_only_the_columns_rows_use_and_answers_as_a_full_fit():
    """Sparse features (character n-grams: 32,768 hashed columns, a few hundred used by a round's rows) are
    fitted on the used columns only, which an L2 penalty leaves at the very optimum of the full fit."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    dense, y = noisy_task(1, 300, dim=8)
    grams = sparse.random(300, 5000, density=0.002, random_state=1, format="csr")
    x = sparse.hstack([sparse.csr_matrix(dense), grams], format="csr")
    student = Points(x)
    train = [str(i) for i in rng.choice(300, 120, replace=False)]
    student.fit(train, [y[int(i)] for i in train])
    rows = [int(t) for t in train]
    full = LogisticRegression(C=4.0, class_weight="balanced", max_iter=5000).fit(x[rows], y[rows])
    unused = np.flatnonzero(x[rows].getnnz(axis=0) == 0)
    assert len(unused) > 3500 and not np.asarray(student.heads[0]["coef"])[:, unused].any()
    ours = student._probabilities(x)
    assert np.allclose(ours, full.predict_proba(x), atol=1e-6)
