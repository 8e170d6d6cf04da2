"""A student served merged: its LoRA adapter folded into the base weights, checked before it is served.

An unmerged adapter costs every generated token two small extra products per adapted weight, which on few
cores makes a student decode markedly slower than its base (``compound.models.merge``).
The merged model (``model.gguf`` beside ``adapter.gguf``) costs what the base costs.

Guarantees:
- the adapter stays the trained artefact (``check_export`` checks it against the training process); the
  merged file is derived from it and the record says how: ``merged.sha256``, ``merged.types``, and
  ``merged.check``, where the merged model and the adapter answered the same prompts (up to
  ``CHECK_PROMPTS`` training prompts, greedy, default engine, response cache off);
- the merged model is served only if every checked reply is the same as the adapter's; otherwise the
  adapter is served and ``merged.served`` is false with the replies that differed;
- ``served_spec`` refuses a merged file or an adapter whose sha256 changed since it was recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compound.core.errors import ConfigurationError

MERGED_FILE = "model.gguf"
CHECK_PROMPTS = 4
CHECK_TOKENS = 64


def _replies(spec: str, prompts: list[list[dict[str, str]]]) -> list[str]:
    from compound.models.registry import get_model

    model = get_model(spec)
    return [model.generate(m, max_tokens=CHECK_TOKENS, temperature=0.0, cache=False).text for m in prompts]


def merge_student(folder: Path, base: str, prompts: list[list[dict[str, str]]]) -> dict[str, Any]:
    """Merge ``folder``'s adapter into ``base`` as ``folder/model.gguf`` and check it on ``prompts``.
    Returns the record's ``merged`` entry. The merge counts as local work and the check's replies as
    model calls in the active usage trackers (so do not call it inside ``local_work``: it would count
    the replies twice, and wait on the process clock that block holds)."""
    from compound.core.settings import get_settings
    from compound.core.usage import local_work
    from compound.models.embedded import get_embedded
    from compound.models.lora import LoraAdapter, file_sha256
    from compound.models.merge import merge_lora
    from compound.optimize.distill.pipeline import student_spec

    adapter = LoraAdapter.load(folder / "adapter.gguf")
    with local_work():
        done = merge_lora(get_embedded(base).path(get_settings().models_dir), (adapter,), folder / MERGED_FILE)
    checked = prompts[:CHECK_PROMPTS]
    merged = _replies(str((folder / MERGED_FILE).resolve()), checked)
    unmerged = _replies(student_spec(base, folder / "adapter.gguf"), checked)
    differ = [{"merged": a, "adapter": b} for a, b in zip(merged, unmerged, strict=True) if a != b]
    return {
        "file": MERGED_FILE,
        "sha256": file_sha256(folder / MERGED_FILE),
        "types": done["types"],
        "check": {"prompts": len(checked), "same": len(checked) - len(differ), "differ": differ},
        "served": bool(checked) and not differ,
    }


def served_spec(folder: str | Path, record: dict[str, Any]) -> str:
    """The model spec a saved student is served with: its merged file where the record says it passed the
    check, else the base with its adapter. Each file must still have the sha256 recorded at training."""
    from compound.models.lora import file_sha256
    from compound.optimize.distill.pipeline import student_spec

    folder = Path(folder)
    merged = record.get("merged") or {}
    if merged.get("served"):
        path = folder / merged["file"]
        if not path.exists() or file_sha256(path) != merged["sha256"]:
            raise ConfigurationError(
                f"{path} is missing or changed since it was merged (its sha256 differs); retrain it"
            )
        return str(path.resolve())
    adapter = folder / record["adapter"]
    if not adapter.exists() or file_sha256(adapter) != record["adapter_sha256"]:
        raise ConfigurationError(f"{adapter} is missing or changed since training (its sha256 differs); retrain it")
    return student_spec(record["base"], adapter)


def add_merged(folder: str | Path) -> dict[str, Any]:
    """Merge and check the adapter of a student saved without a merged model (made before ``merge`` was
    there, or with ``merge=False``), checked on the prompts of its ``export_check.json``; rewrites its
    ``student.json`` and returns the new record. A student that already has a merged model is left as is."""
    import json
    import time

    from compound.optimize.distill.pipeline import read_record
    from compound.optimize.distill.report import write_json

    folder = Path(folder)
    record = read_record(folder)
    if record.get("merged"):
        return record
    check = folder / "export_check.json"
    prompts = [p["messages"] for p in json.loads(check.read_text())["prompts"]] if check.exists() else []
    cpu = time.process_time()
    record["merged"] = merge_student(folder, record["base"], prompts)
    record["cost"]["merge_cpu_s"] = time.process_time() - cpu
    record["model"] = served_spec(folder, record)
    write_json(record, folder / "student.json")
    return record
