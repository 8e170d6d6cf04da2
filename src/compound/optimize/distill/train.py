"""LoRA fine-tuning of an embedded model on CPU torch (transformers + peft), resumable after a SIGKILL.

Guarantees:
- the base is the embedded model's own GGUF, dequantized by transformers (``gguf_file=``), so the
  student trains on the weights llama.cpp serves;
- each example is the exact chat the program sends (rendered with the model's chat template); the
  loss covers only the reply and its end-of-turn token;
- the data order is a pure function of (seed, epoch), and a checkpoint (LoRA weights, AdamW state, torch
  RNG state as safetensors; step, loss curve and config as JSON) is written to a fresh folder and then
  published by an atomic rename of ``latest.json``: a run killed at any moment resumes from the last
  checkpoint and finishes with the adapter an uninterrupted run gives;
- a budget on steps and on seconds stops training at a step boundary, after a checkpoint;
- nothing here is pickled: ``torch.save`` is never used.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from compound.core.errors import ConfigurationError
from compound.core.progress import Progress
from compound.optimize.distill.export import TARGET_MODULES

CHECKPOINT_VERSION = 1


@dataclass
class TrainConfig:
    rank: int = 8
    alpha: float = 16.0
    lr: float = 1e-3
    epochs: float = 2.0
    batch_size: int = 8
    max_len: int = 256
    warmup: int = 5
    seed: int = 0
    checkpoint_every: int = 10
    max_steps: int | None = None  # budget: stop after this many optimizer steps
    max_seconds: float | None = None  # budget: stop after this many wall-clock seconds (this process)
    threads: int | None = None


@dataclass
class TrainResult:
    steps: int
    total_steps: int
    losses: list[float]
    cpu_s: float
    wall_s: float
    stopped: str  # "done" or the budget that stopped it
    resumed_from: int


def load_base(gguf_path: Path) -> tuple[Any, Any]:
    """(tokenizer, fp32 model) from a GGUF file, through transformers."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        raise ConfigurationError("training a student needs the train extra: pip install 'compound[train]'") from e
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder, name = str(gguf_path.parent), gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    model.config.use_cache = False
    return tok, model


def render_prompt(tok: Any, messages: list[dict[str, str]]) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tok: Any, messages: list[dict[str, str]], reply: str, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of prompt + reply + end of turn, and labels (-100 over the prompt)."""
    prompt = tok(render_prompt(tok, messages), add_special_tokens=False)["input_ids"]
    answer = tok(reply, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids(tok.eos_token)]
    prompt = prompt[-max(1, max_len - len(answer)) :]  # keep the end of an over-long prompt
    ids = (prompt + answer)[-max_len:]
    labels = ([-100] * len(prompt) + answer)[-max_len:]
    return ids, labels


def _order(n: int, seed: int, epoch: int) -> list[int]:
    import random

    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def _batch(encoded: list[tuple[list[int], list[int]]], pad: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in encoded)
    ids = [e[0] + [pad] * (width - len(e[0])) for e in encoded]
    labels = [e[1] + [-100] * (width - len(e[1])) for e in encoded]
    mask = [[1] * len(e[0]) + [0] * (width - len(e[0])) for e in encoded]
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


def _lr(cfg: TrainConfig, step: int, total: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr * max(0.0, (total - step) / max(1, total - cfg.warmup))


def lora_model(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=cfg.rank, lora_alpha=cast(Any, cfg.alpha), lora_dropout=0.0, target_modules=TARGET_MODULES, bias="none"
    )
    return get_peft_model(model, config)


# --- checkpoints: safetensors + JSON, published by renaming latest.json -----------------------------------
def _trainable(model: Any) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, model: Any, opt: Any, step: int, state: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import save_file

    names = list(_trainable(model))
    target = folder / f"step-{step:06d}"
    tmp = folder / f".step-{step:06d}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().contiguous() for n, p in _trainable(model).items()}, str(tmp / "adapter.safetensors"))
    tensors = {"rng": torch.get_rng_state()}
    for i, p in enumerate(_trainable(model).values()):
        for key, value in opt.state.get(p, {}).items():
            tensors[f"{i}.{key}"] = value.detach().reshape(value.shape).contiguous()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"version": CHECKPOINT_VERSION, "step": step, "params": names, **state}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    latest = folder / "latest.json"
    tmp_latest = folder / f".latest.{os.getpid()}.tmp"
    tmp_latest.write_text(json.dumps({"version": CHECKPOINT_VERSION, "step": step, "folder": target.name}))
    os.replace(tmp_latest, latest)
    for old in folder.glob("step-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, model: Any, opt: Any, fingerprint: str) -> dict[str, Any] | None:
    """Restore the last published checkpoint into ``model`` and ``opt``; None when there is none."""
    import torch
    from safetensors.torch import load_file

    latest = folder / "latest.json"
    if not latest.exists():
        return None
    pointer = json.loads(latest.read_text())
    ckpt = folder / pointer["folder"]
    state = json.loads((ckpt / "state.json").read_text())
    if state.get("fingerprint") != fingerprint:
        raise ConfigurationError(
            f"{folder} holds a checkpoint of another training run (other data or settings); "
            "delete the folder or pass another --out"
        )
    params = _trainable(model)
    weights = load_file(str(ckpt / "adapter.safetensors"))
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
    for i, p in enumerate(params.values()):
        entry = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{i}.")}
        if entry:
            opt.state[p] = entry
    torch.set_rng_state(tensors["rng"])
    return state


# --- the loop --------------------------------------------------------------------------------------------
def train(
    tok: Any,
    model: Any,
    examples: list[dict[str, Any]],
    folder: Path,
    cfg: TrainConfig,
    *,
    fingerprint: str,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``model`` (a PEFT model) on ``examples`` ({"messages": [...], "reply": str}), resuming
    from ``folder`` when it holds a checkpoint of the same run."""
    import torch

    if not examples:
        raise ConfigurationError("no training examples survived labelling and filtering; nothing to train on")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    encoded = [encode(tok, e["messages"], e["reply"], cfg.max_len) for e in examples]
    per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = max(1, math.ceil(per_epoch * cfg.epochs))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    folder.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(folder, model, opt, fingerprint) or {"step": 0, "losses": [], "cpu_s": 0.0}
    start, losses = state["step"], list(state["losses"])
    cpu0, wall0 = time.process_time(), time.monotonic()
    pad = tok.convert_tokens_to_ids(tok.pad_token or tok.eos_token)
    model.train()
    stopped = "done"
    # the latest loss: a resumed run shows its last recorded one until its first step
    bar = Progress(
        progress, "training", total, start, formats={"loss": "loss {:.4f}"}, loss=losses[-1] if losses else None
    )
    step = start
    try:
        while step < total:
            if cfg.max_steps is not None and step >= cfg.max_steps:
                stopped = f"max_steps={cfg.max_steps}"
                break
            if cfg.max_seconds is not None and time.monotonic() - wall0 >= cfg.max_seconds:
                stopped = f"max_seconds={cfg.max_seconds:g}"
                break
            epoch, offset = divmod(step, per_epoch)
            order = _order(len(encoded), cfg.seed, epoch)
            rows = order[offset * cfg.batch_size : (offset + 1) * cfg.batch_size]
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step, total)
            loss = model(**_batch([encoded[i] for i in rows], pad)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(round(loss.item(), 5))  # .item(): the value, without autograd's warning
            bar.update(done=step, loss=losses[-1])
            if step % cfg.checkpoint_every == 0 or step == total:
                cpu = state["cpu_s"] + time.process_time() - cpu0
                save_checkpoint(folder, model, opt, step, _state(fingerprint, losses, cpu, cfg))
    finally:
        bar.stop()
    cpu = state["cpu_s"] + time.process_time() - cpu0
    if step % cfg.checkpoint_every and step != total:  # a budget stop: keep what was learned
        save_checkpoint(folder, model, opt, step, _state(fingerprint, losses, cpu, cfg))
    model.eval()
    return TrainResult(step, total, losses, cpu, time.monotonic() - wall0, stopped, start)


def _state(fingerprint: str, losses: list[float], cpu_s: float, cfg: TrainConfig) -> dict[str, Any]:
    return {"fingerprint": fingerprint, "losses": losses, "cpu_s": cpu_s, "config": asdict(cfg)}
