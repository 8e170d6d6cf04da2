"""Scripted teacher, student and judge for the email writer recipe (``compound distill email-writer``),
and a fake of the distill pipeline's training seam (``fit_student``: torch training is an integration
test). Registered as ``ew-teacher``, ``ew-student`` (the base name) and ``ew-judge``.

- the teacher invents the box ``<name>, <topic>, <tone>`` for each draw; it drafts a clean email, except
  for a 'brief' box (a five-word body: the length check fails, every Repair attempt too);
- the judge (pairwise, as the filter's and the evaluation's judges are) prefers, for an 'urgent' box, the
  filter's control (another box's draft) to the box's own draft, so the filter drops every 'urgent' draft;
  otherwise it always answers "A" (a pure position bias, which judging both orders must cancel);
- the student (what the fake training installs) drafts like the teacher but writes an invented name into a
  'firm' email, so the no-invented-facts check fails on those boxes.
"""

import hashlib
import json
import re
from pathlib import Path

import compound
from compound.models.lora import file_sha256

LATENCY_S = {"ew-teacher": 0.03, "ew-student": 0.01, "ew-judge": 0.02}


def _box_of(request) -> str:
    """The box from the program's first user message (a Repair turn comes after it)."""
    for m in request.messages:
        if m.role == "user" and m.content.startswith("box: "):
            return m.content.removeprefix("box: ").strip()
    return request.messages[-1].content


def draft(box: str, invent: bool) -> dict:
    parts = [p.strip() for p in box.split(",")]
    name = parts[0]
    body = (
        f"I am writing about this: {box}. I wanted you to have the details as soon as possible, "
        "and please tell me if anything is unclear or if you need more from me."
    )
    if invent and "firm" in box:
        body += " My colleague Bob will follow up."
    if "brief" in box:
        body = "Quick note about this."
    return {"subject": "A quick note", "greeting": f"Hi {name},", "body": body, "sign_off": "Best regards,"}


def writer(invent: bool):
    def reply(request) -> str:
        text = request.messages[-1].content
        if "To:" in text and "About:" in text:  # inventing a box
            fields = dict(re.findall(r"^(To|About|Tone): (.*)$", text, re.M))
            name = fields["To"].split(", ")[-1]
            return json.dumps({"box": f"{name}, {fields['About']}, {fields['Tone']}"})
        return json.dumps(draft(_box_of(request), invent))

    return reply


def judge(request) -> str:
    """Pairwise only. For an 'urgent' box it prefers the output that is not a draft of it (the filter's
    control: a draft quotes its own box); otherwise, and wherever both outputs quote the box, "A"."""
    text = request.messages[-1].content
    box = re.search(r"Inputs: \{'box': '(.*?)'\}", text).group(1)
    a, b = text.split("Output A:")[1].split("Output B:")
    if "urgent" in box and (box in a) != (box in b):
        return json.dumps({"reason": "too calm for an urgent box", "better": "B" if box in a else "A"})
    return json.dumps({"reason": "A reads better.", "better": "A"})


def register() -> None:
    models = {"ew-teacher": writer(False), "ew-judge": judge}
    for name, fn in models.items():
        compound.register_model(name, compound.ScriptedBackend(fn, model=name, latency_s=LATENCY_S[name]))
    compound.configure(large="ew-teacher")


def student_backend():
    return compound.ScriptedBackend(writer(True), model="ew-student-trained", latency_s=LATENCY_S["ew-student"])


def fake_training(trained: list) -> None:
    """Replace the pipeline's training seam: record the examples, write an adapter and a merged model that
    'answers as the adapter', and register the merged file's path as the scripted student."""
    from compound.optimize.distill import pipeline

    def fit_student(base, examples, out, cfg, progress=True, check_prompts=4, merge=True):
        trained.append(examples)
        digest = hashlib.sha256(json.dumps(examples).encode()).hexdigest()
        (out / "adapter.gguf").write_bytes(b"GGUF adapter " + digest.encode())
        (out / "model.gguf").write_bytes(b"GGUF merged " + digest.encode())
        compound.register_model(str((out / "model.gguf").resolve()), student_backend())
        merged = {
            "file": "model.gguf",
            "sha256": file_sha256(out / "model.gguf"),
            "types": ["Q8_0"],
            "check": {"prompts": 4, "same": 4, "differ": []},
            "served": True,
        }
        steps = max(1, len(examples) // cfg.batch_size)
        train = {"steps": steps, "total_steps": steps, "stopped": "done", "cpu_s": 3.0, "losses": [2.0, 1.0]}
        return {
            "adapter_sha256": file_sha256(out / "adapter.gguf"),
            "merged": merged,
            "merge_cpu_s": 1.0,
            "train": train,
        }

    pipeline.fit_student = fit_student


def installed(home: Path) -> Path:
    return Path(home) / "students" / "email-writer" / "email-writer.gguf"
