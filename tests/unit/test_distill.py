"""Distillation without training: teacher labelling, the agreement/requirement filter and its saved
decisions, training examples in the student's own prompt format, the GGUF adapter layout, break-even."""

import asyncio
import json
import random

import numpy as np
import pytest

from compound import ScriptedBackend
from compound.control.requirements import Check
from compound.evaluate.compare import classifier
from compound.optimize.distill.data import (
    as_teacher,
    balance,
    chat_of,
    class_field,
    dedupe,
    label,
    program_inputs,
    student_program,
    training_examples,
)
from compound.optimize.distill.export import gguf_name, permute_rows, write_gguf_adapter
from compound.optimize.distill.filter import Filter, write_decisions
from compound.program.predict import Predict
from compound.strategies.rejection import RejectionSampling
from compound.strategies.repair import Repair


def teacher_backend():
    """Greedy answers follow the text; sampled answers flip on rows containing 'unsure'."""

    def reply(request):
        text = request.messages[-1].content
        label = "spam" if "win" in text else "ham"
        if request.temperature > 0 and "unsure" in text:
            label = "ham" if label == "spam" else "spam"
        return json.dumps({"label": label})

    return ScriptedBackend(reply, model="teacher", latency_s=0.01)


ROWS = [{"row": "text: win a prize", "label": "ham"}, {"row": "text: see you at 5", "label": "spam"}]


def test_label_and_agreement_filter_save_every_decision(tmp_path):
    asyncio.run(_test_label_and_agreement_filter_save_every_decision(tmp_path))


async def _test_label_and_agreement_filter_save_every_decision(tmp_path):
    program = classifier(["spam", "ham"], None)
    teacher = as_teacher(program, teacher_backend())
    inputs = [program_inputs(program, r) for r in ROWS] + [{"row": "text: win, unsure"}]
    assert all(set(i) == {"row"} for i in inputs)  # the gold column never reaches the teacher
    rows = await label(teacher, inputs, samples=3)
    await Filter(min_agreement=1.0).decide(rows)
    assert [r.decision["kept"] for r in rows] == [True, True, False]
    assert "agree 1/3" in rows[2].decision["reason"]
    stats = write_decisions(rows, tmp_path / "examples.jsonl")
    assert stats == {"rows": 3, "kept": 2, "dropped": 1, "synthetic": 0}
    saved = [json.loads(line) for line in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert [s["output"]["label"] for s in saved] == ["spam", "ham", "spam"]  # teacher labels, not gold
    assert all(s["reason"] for s in saved) and len(saved[2]["samples"]) == 3


def test_labelling_shows_its_progress(capsys):
    """A long teacher pass says how far it is: rows done of all, under a 'labelling' bar."""
    program = classifier(["spam", "ham"], "teacher")
    inputs = [{"row": f"text: win {i}"} for i in range(3)]
    rows = asyncio.run(label(as_teacher(program, teacher_backend()), inputs, samples=1, progress=True))
    assert len(rows) == 3
    captured = capsys.readouterr()
    assert "labelling: 3/3" in captured.err and "rows/s" in captured.err  # a log line: not a terminal
    assert captured.out == ""  # stdout stays the command's output


def test_program_requirements_drop_outputs():
    asyncio.run(_test_program_requirements_drop_outputs())


async def _test_program_requirements_drop_outputs():
    program = Predict(
        "question -> answer",
        model=teacher_backend(),
        requirements=[Check(lambda v: len(v.answer) < 10, "short answer")],
        strategy=RejectionSampling(2),
    )
    backend = ScriptedBackend(lambda r: json.dumps({"answer": "x" * (3 if "a" in r.messages[-1].content else 20)}))
    rows = await label(as_teacher(program, backend), [{"question": "a"}, {"question": "b"}], samples=1)
    await Filter(min_agreement=1.0).decide(rows, program.requirements)
    assert [r.decision["kept"] for r in rows] == [True, False]
    assert "short answer" in rows[1].decision["reason"]


def test_requirements_the_strategy_checked_are_not_run_again_by_the_filter():
    runs = {"short": 0, "plain": 0}

    def counted(name, ok):
        def check(value):
            runs[name] += 1
            return ok(value)

        return check

    program = Predict(
        "question -> answer",
        requirements=[Check(counted("short", lambda v: len(v.answer) < 10), "short answer")],
        strategy=RejectionSampling(1),
    )
    backend = ScriptedBackend(lambda r: json.dumps({"answer": "ok"}), latency_s=0.01)
    (row,) = asyncio.run(label(as_teacher(program, backend), [{"question": "a"}], samples=1))
    assert runs["short"] == 1  # the strategy's own check
    extra = Check(counted("plain", lambda v: v.answer.isalpha()), "letters only")  # not the program's
    asyncio.run(Filter().decide([row], [*program.requirements, extra]))
    assert runs == {"short": 1, "plain": 1} and row.decision["kept"]
    assert [v["requirement"] for v in row.decision["validations"]] == ["short answer", "letters only"]


def test_a_pairwise_judge_drops_only_the_outputs_it_ranks_below_another_rows_in_both_orders():
    """The decision rule: each output against the next row's (a control) for its own inputs, both orders;
    dropped when the share of verdicts it wins (a tie a half) is below ``min_preference`` (0.5)."""
    program = Predict("question -> answer", strategy=RejectionSampling(1))
    teacher = ScriptedBackend(lambda r: json.dumps({"answer": r.messages[-1].content[-1] * 3}), latency_s=0.01)

    def judge(request):  # for question "a": prefers the control; "b": position A; "c": its own answer
        text = request.messages[-1].content
        question = text.split("'question': '")[1][0]
        own_first = f'"answer":"{question * 3}"' in text.split("Output B:")[0]
        better = {"a": "B" if own_first else "A", "b": "A", "c": "A" if own_first else "B"}[question]
        return json.dumps({"reason": f"judged {question}", "better": better})

    grader = ScriptedBackend(judge, model="pair-judge", latency_s=0.01)
    rows = asyncio.run(label(as_teacher(program, teacher), [{"question": q} for q in "abc"], samples=1))
    asyncio.run(Filter(judge=grader, criterion="the better answer", pairwise=True).decide(rows))
    assert [r.decision["kept"] for r in rows] == [False, True, True]
    assert [r.decision["validations"][-1]["score"] for r in rows] == [0.0, 0.5, 1.0]
    assert "{'question': 'b'} (a control), this output won 0 of 2 orders and lost 2" in rows[0].decision["reason"]
    assert len(grader.requests) == 6  # two orders a row
    strict = Filter(judge=grader, criterion="the better answer", pairwise=True, min_preference=0.75)
    asyncio.run(strict.decide(rows))
    assert [r.decision["kept"] for r in rows] == [False, False, True]  # a split no longer suffices
    (alone,) = asyncio.run(label(as_teacher(program, teacher), [{"question": "a"}], samples=1))
    asyncio.run(Filter(judge=grader, pairwise=True).decide([alone]))
    assert alone.decision["kept"] and "no other row's output to compare with" in alone.decision["reason"]


def test_the_teacher_answers_as_the_program_does_repair_included():
    """With a Repair strategy, the answer the student learns is the repaired one the program returns."""
    program = Predict(
        "question -> answer",
        requirements=[Check(lambda v: len(v.answer) < 10, "short answer")],
        strategy=Repair(2),
    )
    backend = ScriptedBackend(
        lambda r: json.dumps({"answer": "ok" if "short answer" in r.messages[-1].content else "x" * 20})
    )
    (row,) = asyncio.run(label(as_teacher(program, backend), [{"question": "a"}], samples=1))
    asyncio.run(Filter().decide([row], program.requirements))
    assert row.greedy.value.answer == "ok" and row.decision["kept"]


def test_training_examples_are_the_students_own_prompt():
    asyncio.run(_test_training_examples_are_the_students_own_prompt())


async def _test_training_examples_are_the_students_own_prompt():
    program = classifier(["spam", "ham"], "teacher")
    rows = await label(as_teacher(program, teacher_backend()), [{"row": "text: win"}], samples=1)
    await Filter().decide(rows)
    student = student_program(program, "student-model")
    (example,) = training_examples(student, rows)
    assert example["reply"] == '{"label":"spam"}'
    assert example["messages"] == chat_of(student, {"row": "text: win"})
    system, user = example["messages"]
    assert "Classify" not in system["content"] and '"spam"' in system["content"]  # no instructions, schema note only
    assert user == {"role": "user", "content": "row: text: win"}
    # what the student program actually sends is what it was trained on
    seen = ScriptedBackend(['{"label":"spam"}'], model="student-probe")
    probe = student_program(program, seen)
    await probe.aforward(row="text: win")
    assert [m.to_dict() for m in seen.requests[0].messages] == example["messages"]


def test_rarer_teacher_labels_are_oversampled_up_to_the_cap():
    from compound.core.errors import ConfigurationError

    labels = ["ham"] * 7 + ["spam"] * 2 + ["other"]
    examples = [
        {"messages": [{"role": "user", "content": f"m{i}"}], "reply": json.dumps({"label": x})}
        for i, x in enumerate(labels)
    ]
    out, record = balance(examples, "label", 3)
    assert out[: len(examples)] == examples  # the originals, in order, then the repeats
    assert all(e in examples for e in out)  # nothing invented
    assert record == {
        "field": "label",
        "max_repeat": 3,
        "before": {"ham": 7, "spam": 2, "other": 1},
        "after": {"ham": 7, "spam": 6, "other": 3},
    }
    spam = [e["messages"][0]["content"] for e in out if '"spam"' in e["reply"]]
    assert sorted(spam) == ["m7"] * 3 + ["m8"] * 3  # each minority example repeated evenly
    assert balance(examples, "label", 10)[1]["after"] == {"ham": 7, "spam": 7, "other": 7}
    assert balance(examples, "label", 1)[0] == examples
    with pytest.raises(ConfigurationError, match="at least 1"):
        balance(examples, "label", 0)
    assert class_field(classifier(["spam", "ham"], None)) == "label"
    assert class_field(Predict("question -> answer")) is None  # free text: nothing to balance


def test_dedupe_drops_near_copies():
    rows = [{"t": "win a free prize now"}, {"t": "Win a FREE prize now!"}, {"t": "lunch at noon?"}]
    assert dedupe(rows) == [0, 2]
    assert dedupe(rows, against=[{"t": "lunch at noon"}]) == [0]


def test_gguf_names_and_qk_permutation():
    assert gguf_name("base_model.model.model.layers.3.self_attn.q_proj") == "blk.3.attn_q.weight"
    assert gguf_name("model.layers.12.mlp.down_proj") == "blk.12.ffn_down.weight"
    w = np.arange(2 * 8 * 3).reshape(2 * 8, 3)  # 2 heads of 8 rows: halves interleave pairwise
    p = permute_rows(w, 2)
    assert p[:, 0].tolist()[:8] == [0, 12, 3, 15, 6, 18, 9, 21]
    assert sorted(p[:, 0].tolist()) == sorted(w[:, 0].tolist())


def test_written_adapter_has_the_keys_and_shapes_llama_cpp_checks(tmp_path):
    from gguf import GGUFReader, GGUFType, GGUFWriter

    base = tmp_path / "base.gguf"
    writer = GGUFWriter(str(base), "llama")
    writer.add_uint32("llama.attention.head_count", 2)
    writer.add_uint32("llama.attention.head_count_kv", 1)
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((16, 12), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 12)).astype(np.float32), rng.standard_normal((16, 4)).astype(np.float32)
    out = write_gguf_adapter({"model.layers.0.self_attn.q_proj": (a, b)}, 8.0, base, tmp_path / "a.gguf")
    reader = GGUFReader(str(out))

    def value(key):
        f = reader.fields[key]
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0].name == "STRING" else v.tolist()[0]

    assert value("general.type") == GGUFType.ADAPTER and value("general.architecture") == "llama"
    assert value("adapter.type") == "lora" and value("adapter.lora.alpha") == 8.0
    tensors = {t.name: t for t in reader.tensors}
    assert list(tensors["blk.0.attn_q.weight.lora_a"].shape) == [12, 4]  # ne order: [in, r]
    assert list(tensors["blk.0.attn_q.weight.lora_b"].shape) == [4, 16]  # [r, out]
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight.lora_b"].data, permute_rows(b, 2))
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight.lora_a"].data, a)


def test_loss_and_cost_plot(tmp_path):
    from compound.optimize.distill.report import plot

    costs = {"teacher_cpu_per_row": 1.0, "student_cpu_per_row": 0.2, "one_time_cpu_s": 400.0, "break_even_rows": 500}
    path = plot([3.0, 2.0, 1.0, 0.5], tmp_path / "loss.png", costs)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_for_training_are_the_ones_compare_does_not_evaluate():
    from compound.cli.distill import unseen_order

    order = unseen_order(1000, 0)
    reference = list(range(1000))
    random.Random(0).shuffle(reference)
    assert order == reference  # compare evaluates order[:limit]; distill takes order[-rows:]


def test_distill_pipeline_records_the_student_and_compare_refuses_seen_rows(tmp_path, monkeypatch):
    from compound.core.errors import ConfigurationError
    from compound.models.lora import file_sha256
    from compound.optimize.distill import pipeline
    from compound.optimize.distill.student import student_classifier, student_one_time_cpu_s

    def fake_fit(base, examples, out, cfg, progress=True, check_prompts=4, merge=True):  # an integration test
        trained.append(examples)
        (out / "adapter.gguf").write_bytes(b"GGUF" + json.dumps(examples).encode())
        return {
            "adapter_sha256": file_sha256(out / "adapter.gguf"),
            "merged": None,  # merging is tested in test_distill_merged
            "merge_cpu_s": 0.0,
            "train": {"cpu_s": 5.0, "losses": [1.0]},
        }

    trained = []
    monkeypatch.setattr(pipeline, "fit_student", fake_fit)
    synthetic = json.dumps(
        {"items": [{"row": "text: win a car"}, {"row": "text: Win a car!"}, {"row": "text: win a boat"}]}
    )

    def reply(request):
        return synthetic if "new, varied inputs" in request.messages[-1].content else teacher_backend()._fn(request)

    teacher = ScriptedBackend(reply, model="teacher-2")
    job = pipeline.Distill(teacher, out=tmp_path / "s", samples=2, min_rows=4)
    student = job.compile(classifier(["spam", "ham"], teacher), [{"row": "text: win now"}, {"row": "text: hi mom"}])
    assert student.model == f"smollm2-135m+lora={(tmp_path / 's' / 'adapter.gguf').resolve()}"
    assert student.instructions == "" and student.demos == []
    record = json.loads((tmp_path / "s" / "student.json").read_text())
    assert record["data"]["synthetic"] == 2 and record["data"]["rows"] == 4  # the near-copy was dropped
    # teacher labels spam 3, ham 1: the ham example is repeated (up to 3 times its count) before training
    assert record["data"]["balance"]["before"] == {"spam": 3, "ham": 1}
    assert record["data"]["balance"]["after"] == {"spam": 3, "ham": 3}
    assert len(trained[0]) == record["data"]["training_examples"] == 6
    assert record["cost"]["train_cpu_s"] == 5.0
    assert student_one_time_cpu_s(tmp_path / "s") == pytest.approx(sum(record["cost"].values()))
    assert student_classifier(tmp_path / "s", ["text: something else"]).model == student.model
    with pytest.raises(ConfigurationError, match="1 of the rows to evaluate were labelled"):
        student_classifier(tmp_path / "s", ["text: win now"])
    (tmp_path / "s" / "adapter.gguf").write_bytes(b"GGUF changed")
    with pytest.raises(ConfigurationError, match="changed since training"):
        student_classifier(tmp_path / "s")


def test_export_check_measures_logit_noise_argmax_and_the_adapters_effect(tmp_path, monkeypatch):
    """check.compare on scripted logits: llama.cpp as base + scale x training's move + noise."""
    from types import SimpleNamespace

    import numpy as np

    from compound.models import registry
    from compound.optimize.distill import check

    base = np.array([[0.0, 1, 2, 3, 4, 5], [5.0, 4, 3, 2, 1, 0]])  # two reply positions, six tokens
    move = np.array([[6.0, 0, 0, 0, 0, -6], [0.0, 0, 0, 0, 0, 15]])  # what training did to them
    trained = base + move  # position 0: top 0 by 2 (a near tie); position 1: top 5 by 10
    positions = [
        {"ids": list(range(6)), "trained": t.tolist(), "base": b.tolist(), "top": int(t.argmax()), "margin": m}
        for t, b, m in zip(trained, base, [2.0, 10.0], strict=True)
    ]
    messages = [{"role": "user", "content": "hi"}]
    prompt = {"messages": messages, "reply": "ok", "tokens": [7, 8, 9, 10], "start": 1, "positions": positions}
    (tmp_path / "export_check.json").write_text(json.dumps({"noise": check.NOISE, "prompts": [prompt]}))

    class FakeLlama:  # llama.cpp's logits on the reply positions, rows start .. len(tokens) - 2
        def __init__(self, logits):
            self.logits = logits

        def reset(self):
            self.scores = None

        def eval(self, tokens):
            self.scores = np.vstack([np.zeros((1, 6)), self.logits, np.zeros((1, 6))])

    def run(scale, noise=0.3):
        jitter = noise * np.array([[1.0, -1, 1, -1, 1, -1], [-1.0, 1, -1, 1, -1, 1]])
        llms = {"base+lora": FakeLlama(base + scale * move + jitter), "base": FakeLlama(base - jitter)}
        monkeypatch.setattr(check, "_llama", lambda spec, threads: llms[spec])
        reply = SimpleNamespace(generate=lambda *a, **k: SimpleNamespace(text="ok" if scale == 1 else "no"))
        monkeypatch.setattr(registry, "get_model", lambda spec: reply)
        (row,) = check.compare(tmp_path, "base", "base+lora")
        return row

    good = run(1.0)
    assert good["max_diff"] == pytest.approx(0.3) and good["same"] and good["min_margin"] == 2.0
    assert good["argmax_checked"] == 1 and good["argmax_differs"] == 0  # only the clear position is checked
    assert (
        good["moved"] == 15.0 and good["effect_cosine"] > 0.99 and good["effect_scale"] == pytest.approx(1.0, abs=0.1)
    )
    half = run(0.5)  # a wrongly scaled adapter
    assert half["max_diff"] == pytest.approx(7.5, abs=0.3) and half["effect_scale"] == pytest.approx(0.5, abs=0.1)
    unloaded = run(0.0)  # the adapter is not applied
    assert unloaded["argmax_differs"] == 1 and abs(unloaded["effect_scale"]) < 0.1 and not unloaded["same"]


def test_filtering_shows_its_progress(capsys):
    """The filter (long with a judge) says how far it is, as labelling does."""
    program = classifier(["spam", "ham"], "teacher")
    rows = asyncio.run(label(as_teacher(program, teacher_backend()), [{"row": f"text: win {i}"} for i in range(3)]))
    asyncio.run(Filter(min_agreement=1.0).decide(rows, progress=True))
    assert "filtering: 3/3" in capsys.readouterr().err and all(r.decision["kept"] for r in rows)
