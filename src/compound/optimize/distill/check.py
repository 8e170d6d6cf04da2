"""The export check: does llama.cpp, with the exported GGUF adapter, compute what the training process did?

The training process (fp32, on the base dequantized from its GGUF) records, for a few training prompts,
its greedy reply and, at every reply position, the logits of the trained model and of the base (adapter
disabled) on the tokens either of them ranks highest (``record``, written to ``export_check.json``).
``compare`` evaluates the same token ids through llama.cpp in this process, with and without the adapter,
and reports per prompt:

- ``max_diff``: the largest |logit difference| between llama.cpp with the adapter and the trained model.
  llama.cpp computes with quantized weights and activations: on smollm2-135m its logits differ from the
  fp32 ones by 0.5 to 1.4 on the base model alone, so ``NOISE`` = 2.0 bounds a correct export;
- ``argmax_checked`` / ``argmax_differs``: positions where the trained model's top-1 wins by more than
  2 x ``NOISE``, and those of them where llama.cpp's top-1 is another token (a correct export has none;
  a closer call may go either way and is not a fault);
- ``moved`` / ``effect_cosine`` / ``effect_scale``: how far training moved the logits from the base's
  (largest |trained - base|), and how llama.cpp's move (with minus without adapter) compares with it:
  the cosine of the two moves and the least-squares slope of llama.cpp's move on training's. An adapter
  that is missing, wrongly scaled or transposed moves llama.cpp's logits by another amount or direction;
- ``same``: whether the student, served as usual (the default engine), replies as the training process
  did. Expected where every reply token's margin exceeds 2 x ``NOISE``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

NOISE = 2.0  # logits: the bound on llama.cpp's quantized arithmetic vs fp32 (with a margin over what was seen)
TOP = 16  # tokens recorded per position, from each model's top


def record(tok: Any, model: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int = 48) -> dict[str, Any]:
    """In the training process: for each prompt, the greedy reply of ``model`` (a PEFT model) and the
    logits of the trained model and of its base on the reply positions (see the module docstring)."""
    import torch

    from compound.optimize.distill.train import render_prompt

    eos = tok.convert_tokens_to_ids(tok.eos_token)
    out = []
    with torch.no_grad():
        for messages in prompts:
            ids = tok(render_prompt(tok, messages), add_special_tokens=False, return_tensors="pt")["input_ids"]
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=eos,
            )
            tokens = gen[0].tolist()
            start = ids.shape[1] - 1  # logits at start + k predict reply token k
            trained = model(input_ids=gen).logits[0, start:-1].float()
            with model.disable_adapter():
                base = model(input_ids=gen).logits[0, start:-1].float()
            positions = []
            for t, b in zip(trained, base, strict=True):
                top2 = t.topk(2).values
                chosen = sorted(set(t.topk(TOP).indices.tolist()) | set(b.topk(TOP).indices.tolist()))
                positions.append(
                    {
                        "ids": chosen,
                        "trained": [round(float(t[i]), 4) for i in chosen],
                        "base": [round(float(b[i]), 4) for i in chosen],
                        "top": int(t.argmax()),
                        "margin": round(float(top2[0] - top2[1]), 4),
                    }
                )
            reply = tok.decode(tokens[start + 1 :], skip_special_tokens=True)
            out.append({"messages": messages, "reply": reply, "tokens": tokens, "start": start, "positions": positions})
    return {"noise": NOISE, "prompts": out}


def _logits(llm: Any, tokens: list[int], start: int) -> Any:
    """llama.cpp's logits (a numpy array, one row per reply position) on exactly these token ids."""
    llm.reset()
    llm.eval(tokens)
    return llm.scores[start : len(tokens) - 1].copy()


def _llama(spec: str, threads: int | None) -> Any:
    from compound.models.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(spec, engine="llama-cpp-python", logits_all=True, n_ctx=1024, n_threads=threads)
    return backend.engine.llm  # type: ignore[attr-defined]


def compare(folder: str | Path, base: str, adapter_spec: str, threads: int | None = None) -> list[dict[str, Any]]:
    """llama.cpp against the training process's ``export_check.json`` in ``folder`` (one row per prompt)."""
    from compound.models.registry import get_model

    recorded = json.loads((Path(folder) / "export_check.json").read_text())["prompts"]
    with_adapter, without = _llama(adapter_spec, threads), _llama(base, threads)
    served = get_model(adapter_spec)
    rows = []
    for rec in recorded:
        lora = _logits(with_adapter, rec["tokens"], rec["start"])
        plain = _logits(without, rec["tokens"], rec["start"])
        diff, checked, differs, moved, dot_ct, dot_tt, dot_cc = 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0
        for pos, cpp, cpp_base in zip(rec["positions"], lora, plain, strict=True):
            for i, t, b in zip(pos["ids"], pos["trained"], pos["base"], strict=True):
                diff = max(diff, abs(float(cpp[i]) - t))
                move_t, move_c = t - b, float(cpp[i] - cpp_base[i])
                moved = max(moved, abs(move_t))
                dot_ct, dot_tt, dot_cc = dot_ct + move_c * move_t, dot_tt + move_t**2, dot_cc + move_c**2
            if pos["margin"] > 2 * NOISE:
                checked += 1
                differs += int(cpp.argmax()) != pos["top"]
        got = served.generate(rec["messages"], max_tokens=48, temperature=0.0, cache=False).text
        rows.append(
            {
                "prompt": rec["messages"][-1]["content"],
                "training": rec["reply"],
                "llama_cpp": got,
                "same": got == rec["reply"],
                "min_margin": min((p["margin"] for p in rec["positions"]), default=None),
                "max_diff": round(diff, 3),
                "argmax_checked": checked,
                "argmax_differs": differs,
                "moved": round(moved, 3),
                "effect_cosine": round(dot_ct / math.sqrt(dot_tt * dot_cc), 4) if dot_tt and dot_cc else 0.0,
                "effect_scale": round(dot_ct / dot_tt, 4) if dot_tt else 0.0,
            }
        )
    return rows
