"""The fine-tuned encoder student on the real MiniLM (CPU torch): it learns a task the frozen embedding
does not separate at once, stays within its CPU cap, and leaves the shared embedder unchanged."""

import random

import numpy as np
import pytest

POS = ["loved", "wonderful", "moving", "clever", "joyful", "brilliant"]
NEG = ["hated", "tedious", "wooden", "silly", "dreary", "clumsy"]


def rows(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pos = rng.random() < 0.5
        out.append((f"the critic found it {rng.choice(POS if pos else NEG)} overall", "pos" if pos else "neg"))
    return out


def test_the_encoder_student_learns_within_its_cap_and_leaves_the_shared_embedder_alone():
    pytest.importorskip("sentence_transformers", reason="needs the dense extra")
    from compound.core.usage import track_usage
    from compound.optimize.students.embedding import embed_texts
    from compound.optimize.students.encoder import EncoderClassifier, EncoderSettings

    train, test = rows(48, 0), rows(40, 1)
    before = embed_texts(["a fixed probe sentence"])
    student = EncoderClassifier(settings=EncoderSettings(epochs=2.0, batch_size=8))
    with track_usage() as used:
        record = student.fit([t for t, _ in train], [y for _, y in train])
    assert record["epochs_done"] == pytest.approx(2.0, abs=0.2) and record["stopped"] is None
    assert used.total.local >= 1 and used.total.calls == 0 and used.total.cpu_s >= record["cpu_s"] * 0.9
    answers = student.predict([t for t, _ in test])
    assert np.mean([a == y for (a, _), (_, y) in zip(answers, test, strict=True)]) >= 0.9
    assert all(0.0 <= c <= 1.0 for _, c in answers)
    assert np.allclose(embed_texts(["a fixed probe sentence"]), before)  # its own copy was trained

    # the probe measures one batch, set-up included: not less than what training paid per example, and it
    # keeps nothing (the trained student above is another object; a probed one is untrained)
    probed = EncoderClassifier(settings=EncoderSettings(batch_size=8))
    per_example = probed.probe([t for t, _ in train], [y for _, y in train])
    assert per_example >= 0.5 * record["cpu_s_per_example"] and not probed.trained
    assert np.allclose(embed_texts(["a fixed probe sentence"]), before)

    cap = 1.5 * record["cpu_s"]  # room for about three epochs
    capped = EncoderClassifier(settings=EncoderSettings(epochs=50.0, batch_size=8))
    record = capped.fit([t for t, _ in train], [y for _, y in train], cpu_cap=cap)
    assert record["stopped"] and record["epochs_done"] < 10
    assert record["cpu_s"] <= 1.15 * cap  # it stops before a batch that would pass the cap


def test_the_students_benchmark_runs_at_its_smoke_size(tmp_path):
    pytest.importorskip("sentence_transformers", reason="needs the dense extra")
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    out = tmp_path / "s.json"
    proc = subprocess.run(
        [sys.executable, "students.py", "--smoke", "--json", str(out)], cwd=bench, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["student"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"frozen MiniLM + logistic", "fine-tuned MiniLM"}
    assert rows["fine-tuned MiniLM"]["train_cpu_s"] > 0 and rows["fine-tuned MiniLM"]["accuracy"] >= 0.8
