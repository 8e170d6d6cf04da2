"""A tiny distillation end to end: a few LoRA steps on CPU torch, the GGUF export, then the adapter loaded
by llama.cpp in a fresh process gives the training process's greedy replies; a SIGKILLed training
resumes from its last checkpoint and finishes every step.

The training process computes in fp32 on the dequantized base; llama.cpp computes with quantized
activations and an f16 KV cache. Measured on this model, the two disagree by up to about 1.4 logits on
the base model and by the same amount with the adapter (the export adds no error of its own), so a greedy
replay is only expected where the training process's reply wins every token by a clear margin. The tiny
run trains until its replies do (and asserts so), then requires llama.cpp to replay them exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="needs the train extra: pip install 'compound[train]'")

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
cfg = TrainConfig(lr=5e-3, epochs=EPOCHS, batch_size=4, warmup=1, checkpoint_every=1, threads=2)
fit = fit_student("smollm2-135m", examples, Path(sys.argv[1]), cfg, progress=False, check_prompts=3)
check = json.loads((Path(sys.argv[1]) / "greedy_check.json").read_text())
margins = [min(t["margins"]) for t in check["tokens"]]
print(json.dumps({"sha256": fit["adapter_sha256"], "train": fit["train"], "greedy": check["replies"], "margins": margins}))
"""


CHECK = """
import json, sys
from compound.models.registry import get_model
from compound.optimize.distill.pipeline import check_export
rows = check_export(sys.argv[1])
base = get_model("smollm2-135m")
prompts = json.load(open(sys.argv[1] + "/greedy_check.json"))["prompts"]
print(json.dumps([rows, [base.generate(p, max_tokens=48, temperature=0.0, cache=False).text for p in prompts]]))
"""


EPOCHS = 6  # 12 steps: enough for every reply to win each token by well over NOISE
NOISE = 1.5  # logits: the largest fp32-vs-llama.cpp difference measured on this model, with margin
SCRIPT = SCRIPT.replace("EPOCHS", str(EPOCHS))


def run_training(out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted tiny training (shared: the export check and the resume reference)."""
    out = tmp_path_factory.mktemp("distill") / "student"
    return out, run_training(out)


def test_tiny_student_exports_a_gguf_adapter_that_llama_cpp_replays(straight):
    out, fit = straight
    assert fit["train"]["losses"][-1] < fit["train"]["losses"][0]
    # the training process learned its labels, each reply token by more than llama.cpp's numeric noise
    assert fit["greedy"] == ['{"label": "zebra"}'] * 3, fit["greedy"]
    assert min(fit["margins"]) > 2 * NOISE, fit["margins"]
    (out / "student.json").write_text(json.dumps({"format": "compound.student", "version": 1, "base": "smollm2-135m"}))
    check = subprocess.run([sys.executable, "-c", CHECK, str(out)], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr[-2000:]
    rows, base = json.loads(check.stdout.strip().splitlines()[-1])
    assert len(rows) == 3 and all(r["same"] for r in rows), rows
    assert [r["llama_cpp"] for r in rows] != base  # the adapter is applied: the base model answers otherwise


def test_sigkill_during_training_then_resume_gives_the_same_adapter(straight, tmp_path):
    reference = straight[1]
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    latest = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = json.loads(latest.read_text())["step"]
    resumed = run_training(out)
    train = resumed["train"]
    assert train["resumed_from"] == killed_at and train["steps"] == train["total_steps"] == reference["train"]["steps"]
    assert len(train["losses"]) == train["steps"]  # the curve continues where the checkpoint left it
    assert (out / "adapter.gguf").read_bytes()[:4] == b"GGUF" and len(resumed["greedy"]) == 3
    # CPU matmuls are not bitwise reproducible across processes here (AdamW's first steps amplify the
    # difference), so the resumed adapter is not compared bit for bit with the uninterrupted one
