"""A tiny distillation end to end, in separate processes as a user runs it: a few LoRA steps on CPU torch,
SIGKILLed mid-way and resumed to the end; then the exported GGUF adapter, loaded by llama.cpp in a fresh
process, computes what the training process computed (``compound.optimize.distill.check``):

- on the same token ids (the reply positions of three prompts), llama.cpp's logits stay within NOISE of
  the trained model's (llama.cpp's quantized arithmetic alone differs from fp32 by up to 1.4 here), and
  where the trained model's top-1 wins by more than 2 x NOISE, llama.cpp picks the same token;
- the adapter has its effect: training moved the logits from the base's by far more than NOISE, and
  llama.cpp's move (with minus without adapter) has the same direction and size, so an adapter that is
  not loaded, wrongly scaled (alpha / r) or transposed fails.

A greedy reply can differ where the trained model's margin is a near tie (a few steps leave the label token
at about one logit), so replies are compared only where every margin exceeds 2 x NOISE."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="needs the train extra: pip install 'compound[train]'")

STEPS = 6  # 8 examples, batch 4, 3 epochs
SCRIPT = """
import json, sys
from pathlib import Path
from compound.optimize.distill.pipeline import fit_student
from compound.optimize.distill.train import TrainConfig
pos = ["I loved it", "great film", "wonderful acting", "a joy to watch"]
neg = ["I hated it", "awful film", "terrible acting", "a bore"]
examples = [
    {"messages": [{"role": "system", "content": "Label:"}, {"role": "user", "content": t}],
     "reply": json.dumps({"label": "zebra" if t in pos else "walrus"})}
    for t in pos + neg
]
cfg = TrainConfig(lr=5e-3, epochs=3, batch_size=4, warmup=1, checkpoint_every=1, threads=2)
fit = fit_student("smollm2-135m", examples, Path(sys.argv[1]), cfg, progress=False, check_prompts=3)
print(json.dumps(fit))
"""

CHECK = """
import json, sys
from compound.optimize.distill.pipeline import check_export
print(json.dumps(check_export(sys.argv[1], "smollm2-135m", threads=2)))
"""


def python(code: str, *args: str, timeout: int = 900) -> object:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """A tiny training SIGKILLed after its second checkpoint, then resumed to the end: (folder, killed at
    step, the resumed run's fit record)."""
    out = tmp_path_factory.mktemp("distill") / "student"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"training ended before it could be killed: {err[-2000:]!r}"
    killed_at = json.loads(latest.read_text())["step"]
    return out, killed_at, python(SCRIPT, str(out))


def test_a_sigkilled_training_resumes_from_its_checkpoint_and_finishes(resumed):
    out, killed_at, fit = resumed
    train = fit["train"]
    assert 2 <= killed_at < STEPS and train["resumed_from"] == killed_at
    assert train["steps"] == train["total_steps"] == STEPS and train["stopped"] == "done"
    assert len(train["losses"]) == STEPS  # the curve continues where the checkpoint left it
    assert train["losses"][-1] < train["losses"][0] / 2
    assert (out / "adapter.gguf").read_bytes()[:4] == b"GGUF"


def test_the_merged_student_is_checked_against_its_adapter_before_it_is_served(resumed):
    out, _, fit = resumed
    merged = fit["merged"]
    assert merged["types"] == ["Q8_0"] and (out / merged["file"]).read_bytes()[:4] == b"GGUF"
    check = merged["check"]
    assert check["prompts"] == 4 and len(check["differ"]) == 4 - check["same"]
    assert merged["served"] == (check["same"] == 4)


def test_llama_cpp_with_the_exported_adapter_computes_what_training_computed(resumed):
    out, _, _ = resumed
    recorded = json.loads((out / "export_check.json").read_text())
    noise = recorded["noise"]
    rows = python(CHECK, str(out), timeout=300)
    assert len(rows) == 3, rows
    for row in rows:
        # the training process learned the reply format (the label token itself may still be a near tie)
        assert json.loads(row["training"])["label"] in {"zebra", "walrus"}, row
        assert row["max_diff"] < noise, row
        assert row["argmax_checked"] >= 5 and row["argmax_differs"] == 0, row
        assert row["moved"] > 3 * noise, row  # training moved the logits well beyond llama.cpp's noise
        assert row["effect_cosine"] > 0.9 and 0.8 < row["effect_scale"] < 1.25, row
        if row["min_margin"] > 2 * noise:
            assert row["same"], row


def test_the_distill_command_trains_merges_and_says_what_it_serves(tmp_path):
    """``compound distill`` as a user runs it: the installed console script, a real (tiny) teacher pass,
    two training steps, then the merge and its check, reported on stderr and recorded in student.json."""
    data = tmp_path / "sms.jsonl"
    texts = ["win a free car now", "call me when you land", "claim your prize today", "see you at lunch"] * 3
    data.write_text("".join(json.dumps({"text": t, "label": "?"}) + "\n" for t in texts))
    out = tmp_path / "student"
    command = shutil.which("compound") or str(Path(sys.executable).with_name("compound"))
    args = ["--data", str(data), "--input", "text", "--labels", "spam,ham", "--teacher", "smollm2-135m"]
    args += ["--rows", "8", "--samples", "1", "--max-steps", "2", "--batch-size", "4", "--threads", "2"]
    env = {**os.environ, "COLUMNS": "1000"}  # one report line per line, however long its paths
    proc = subprocess.run(
        [command, "distill", *args, "--out", str(out)], capture_output=True, text=True, timeout=900, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "student.json").read_text())
    merged = record["merged"]
    assert merged["types"] == ["Q8_0"] and merged["check"]["prompts"] == 4
    assert f"answered as the adapter on {merged['check']['same']}/4 check prompts" in proc.stderr
    served = str((out / "model.gguf").resolve()) if merged["served"] else f"+lora={(out / 'adapter.gguf').resolve()}"
    assert served in record["model"] and f"model: {record['model']}" in proc.stderr
    assert record["cost"]["merge_cpu_s"] > 0 and proc.stdout == ""
