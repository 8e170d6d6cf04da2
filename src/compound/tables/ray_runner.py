"""Run a table operator on a Ray cluster through Ray Data.

Each Ray actor holds its own copy of the program, so a model named by string (an embedded model, say)
is loaded once per worker process; a program pointed at an OpenAI-compatible server (``openai:...``,
e.g. vLLM) has every worker call that shared server instead. Identical row inputs are computed once,
as on the local path, and the outputs go back into the table the same way.

    import ray; ray.init(address="ray://head:10001")     # or leave it to run_table_on_ray, for a local cluster
    result = run_table_on_ray(classify(df, ...), df, workers=8)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from compound.core.concurrency import gather, run_sync
from compound.core.errors import BackendError
from compound.tables.operators import TableOp


class _RowWorker:
    """A Ray Data actor: computes a batch of distinct row inputs with its own copy of the program."""

    def __init__(self, program: Any, output_columns: list[str], settings: dict[str, Any]) -> None:
        import compound

        if settings:
            compound.configure(**settings)
        self.program = program
        self.columns = output_columns

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        from compound.tables.jobs import _value_dict

        values = run_sync(gather(self.program.acall(row=text) for text in batch["text"].tolist()))
        outputs = [json.dumps(_value_dict(v, self.columns), default=str) for v in values]
        return pd.DataFrame({"key": batch["key"].tolist(), "output": outputs})


def run_table_on_ray(
    op: TableOp,
    df: Any,
    *,
    workers: int = 2,
    batch_size: int = 16,
    address: str | None = None,
    settings: dict[str, Any] | None = None,
    num_cpus_per_worker: float | None = None,
) -> Any:
    """Compute ``op`` over ``df`` on Ray and return the new DataFrame (the same as the local path's).

    ``settings`` are applied in every worker (e.g. ``{"openai_base_url": ...}`` for a shared server)."""
    import pandas as pd
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    if num_cpus_per_worker is None:  # leave one CPU for Ray Data's own tasks, or the actors starve them
        cpus = ray.cluster_resources().get("CPU", 1.0)
        num_cpus_per_worker = max(0.1, min(1.0, (cpus - 1) / workers))
    keys: dict[str, str] = {}
    for _, text in op.tasks:
        keys.setdefault(hashlib.sha256(text.encode()).hexdigest(), text)
    if not keys:
        return op.apply(df, {})
    inputs = pd.DataFrame({"key": list(keys), "text": list(keys.values())})
    blocks = max(1, min(len(inputs), workers * 2))
    ds = ray.data.from_pandas([inputs.iloc[i::blocks] for i in range(blocks)])
    results = ds.map_batches(
        _RowWorker,
        fn_constructor_args=(op.program, op.output_columns, settings or {}),
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=workers,
        num_cpus=num_cpus_per_worker,
    ).to_pandas()
    by_key = {k: json.loads(o) for k, o in zip(results["key"], results["output"], strict=False)}
    missing = set(keys) - set(by_key)
    if missing:
        raise BackendError(f"Ray returned no output for {len(missing)} row input(s)")
    ordered = {index: by_key[hashlib.sha256(text.encode()).hexdigest()] for index, text in op.tasks}
    return op.apply(df, ordered)
