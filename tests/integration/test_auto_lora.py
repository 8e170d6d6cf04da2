"""auto with a real LoRA student: trained on CPU torch from the labels auto already has, exported to GGUF,
answered by llama.cpp with token-logprob confidences, and counted in auto's one-time cost. (Whether it
pays is the decision's job, tested in the unit tests; ``payback=0`` here forces the training.)"""

import hashlib
import json
import math

import pytest

from compound import ScriptedBackend
from compound.core.concurrency import run_sync
from compound.optimize.auto import teach
from compound.optimize.auto_lora import LoraStudent

pytest.importorskip("peft", reason="needs the train extra: pip install 'compound[train]'")


def test_auto_trains_a_lora_student_and_llama_cpp_answers_as_its_middle_stage(tmp_path):
    from compound.optimize.distill.train import TrainConfig

    texts = [f"item {i}" for i in range(200)]  # labels from a hash: nothing a student could learn

    def coin(request):
        number = request.messages[-1].content.rsplit(" ", 1)[-1].strip().rstrip("'\"}")
        return json.dumps({"label": ["even", "odd"][hashlib.md5(number.encode()).digest()[0] % 2]})

    teacher = ScriptedBackend(coin, model="coin-teacher", latency_s=0.01)
    lora = LoraStudent(
        payback=0.0,  # the scripted teacher costs no CPU, so no saving could pay: force the training
        min_examples=8,
        folder=tmp_path / "student",
        train=TrainConfig(lr=5e-3, epochs=2, batch_size=4, warmup=1, threads=2),
        progress=False,
    )
    cascade, report = run_sync(
        teach(texts, ["even", "odd"], teacher=teacher, label_budget=24, first=24, target=0.5, lora=lora)
    )
    decision = report["lora"]
    assert decision["picked"], decision
    assert [s.name for s in cascade.stages] == ["proxy", "lora student", "teacher"]
    assert len(cascade.thresholds) == 2 and cascade.thresholds[1].to_dict() == decision["threshold"]
    assert 0 < decision["calibration_rows"] <= 10 and decision["student"]["examples"] >= 14
    # the adapter it trained is the one served (merged into its base where the merge answered the check
    # prompts as the adapter did), and its training CPU is in auto's one-time cost
    adapter = tmp_path / "student" / "adapter.gguf"
    assert hashlib.sha256(adapter.read_bytes()).hexdigest() == decision["student"]["adapter_sha256"]
    merged = decision["student"]["merged"]
    assert merged["check"]["prompts"] == 4 and merged["served"] == (merged["check"]["same"] == 4)
    served = str((tmp_path / "student" / "model.gguf").resolve()) if merged["served"] else f"+lora={adapter}"
    assert served in str(cascade.stages[1].step.model)
    assert decision["train_cpu_s"] > 1.0 and report["one_time"]["cpu_s"] >= decision["train_cpu_s"]
    result = run_sync(cascade.stages[1].step.aresult(row="item 7"))
    assert result.value.label in ("even", "odd")
    logprobs = result.best.generations[-1].logprobs  # llama.cpp's, without the forced end token
    assert logprobs and len(logprobs) < result.best.generations[-1].usage.completion_tokens
    assert result.confidence == pytest.approx(math.exp(sum(logprobs) / len(logprobs))) and result.confidence > 0.3
