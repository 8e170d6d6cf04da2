"""The DSPy side (dspy 3.4.1, compound's ``[bench]`` extra): zero-shot classify, majority vote, optimizers.

Settings, and where they depart from DSPy's defaults (and why):

- ``dspy.LM("openai/<alias>", api_base=<server>, cache=False)``, ``dspy.configure_cache`` with disk and
  memory caches off; the default adapter (``ChatAdapter``, which falls back to ``JSONAdapter`` by itself).
- ``temperature=0`` and ``max_tokens=64`` for classification: DSPy leaves both to the server, whose
  defaults are sampling at 0.8 and no length cap; compound classifies greedily with a short cap too.
  DSPy sends the cap as ``max_completion_tokens``, which ``llama_cpp.server`` ignores, so it is also
  sent as ``max_tokens`` (LiteLLM's ``extra_body``); without that the cap would not hold.
- Self-consistency: ``dspy.majority`` over 5 samples at temperature 0.7 (the temperature DSPy itself
  picks for ``n > 1``). The samples are 5 calls, because ``llama_cpp.server`` answers ``n=5`` with a single
  choice (DSPy would then vote over one answer).
- ``BootstrapFewShot`` with its defaults (4 bootstrapped and up to 16 labelled demos, one round) and the
  large model as teacher (``teacher_settings=dict(lm=large)``, as DSPy documents for a stronger teacher).
- ``KNNFewShot(k=4, trainset, vectorizer=dspy.Embedder(MiniLM.encode))``: the same MiniLM embedding as
  compound's; as DSPy defines it, each input's 4 neighbours are bootstrapped (``BootstrapFewShot`` with its
  defaults, the student's own model as teacher) before the answer.

Rows run one after another (``program(text=...)``); a row whose call fails counts as wrong.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from meter import Meter, side_main

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
os.environ.setdefault("OPENAI_API_KEY", "local")

import dspy  # noqa: E402


def lm(server: dict[str, Any], **kwargs: Any) -> Any:
    if "max_tokens" in kwargs:  # DSPy sends it as max_completion_tokens, which llama_cpp.server ignores
        kwargs["extra_body"] = {"max_tokens": kwargs["max_tokens"]}
    return dspy.LM(f"openai/{server['model']}", api_base=server["base_url"], cache=False, **kwargs)


def signature(labels: list[str]) -> Any:
    fields = {"text": (str, dspy.InputField()), "label": (Literal[tuple(labels)], dspy.OutputField())}
    return dspy.Signature(fields, f"Classify the text. Answer with one label from: {', '.join(labels)}.")


def setup(spec: dict[str, Any], model: str = "small", **kwargs: Any) -> Any:
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    kwargs = {"temperature": 0.0, "max_tokens": 64, **kwargs}
    dspy.configure(lm=lm(spec["servers"][model], **kwargs))
    return signature(spec["labels"])


def answer(program: Any, text: str, **kwargs: Any) -> str | None:
    try:
        return str(program(text=text, **kwargs).label)
    except Exception:  # a reply DSPy could not parse, after its own fallback
        return None


def run_rows(program: Any, rows: list[dict[str, Any]]) -> list[str | None]:
    return [answer(program, r["text"]) for r in rows]


def classify(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    out = []
    for model in ("small", "large"):
        program = dspy.Predict(setup(spec, model))
        predictions, cost = meter.measure(run_rows, program, spec["rows"])
        out.append({"config": f"{model} zero-shot", "predictions": predictions, "rows_cost": cost})
    return out


def vote(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    program = dspy.Predict(setup(spec))

    def one(text: str) -> str | None:
        samples = []
        for i in range(5):
            try:
                samples.append(program(text=text, config={"temperature": 0.7, "rollout_id": i}))
            except Exception:
                pass
        return str(dspy.majority(samples, field="label").label) if samples else None

    predictions, cost = meter.measure(lambda: [one(r["text"]) for r in spec["rows"]])
    return [{"config": "majority of 5", "predictions": predictions, "rows_cost": cost}]


def optimize(spec: dict[str, Any], meter: Meter) -> list[dict[str, Any]]:
    sig = setup(spec)
    trainset = [dspy.Example(text=r["text"], label=r["label"]).with_inputs("text") for r in spec["train"]]

    def metric(example: Any, prediction: Any, trace: Any = None) -> bool:
        return example.label == prediction.label

    large = lm(spec["servers"]["large"], temperature=0.0, max_tokens=64)
    boot = dspy.BootstrapFewShot(metric=metric, teacher_settings={"lm": large})
    compiled, one_time = meter.measure(boot.compile, dspy.Predict(sig), trainset=trainset)
    predictions, cost = meter.measure(run_rows, compiled, spec["rows"])
    out = [{"config": "BootstrapFewShot", "predictions": predictions, "one_time_cost": one_time, "rows_cost": cost}]

    def knn_compile() -> Any:
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(spec["embedding_model"], device="cpu")
        knn = dspy.KNNFewShot(k=4, trainset=trainset, vectorizer=dspy.Embedder(encoder.encode))
        return knn.compile(dspy.Predict(sig))

    compiled, one_time = meter.measure(knn_compile)
    predictions, cost = meter.measure(run_rows, compiled, spec["rows"])
    out.append({"config": "KNNFewShot", "predictions": predictions, "one_time_cost": one_time, "rows_cost": cost})
    return out


if __name__ == "__main__":
    side_main({"classify": classify, "vote": vote, "optimize": optimize})
