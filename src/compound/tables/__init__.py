"""Tables: semantic operators over pandas DataFrames, files in and out, and durable batch jobs.

    import compound
    op = compound.tables.classify(df, "sentiment", ["positive", "negative"], model="smollm2-135m")
    labelled = compound.process_table(op, df).df

Each operator (``classify``, ``extract``, ``impute``, ``map``, ``filter``, ``describe``) builds a
``TableOp`` (a plan: rows, program, output columns); ``process_table`` (``compound.tables.process``)
runs it. ``map`` and ``filter`` are reached as ``compound.tables.map``; they never shadow the builtins.
"""

from __future__ import annotations

from compound._lazy import lazy_exports

_EXPORTS = {
    "classify": "compound.tables.operators:classify_op",
    "extract": "compound.tables.operators:extract_op",
    "impute": "compound.tables.operators:impute_op",
    "map": "compound.tables.operators:map_op",
    "filter": "compound.tables.operators:filter_op",
    "describe": "compound.tables.operators:describe_op",
    "TableOp": "compound.tables.operators",
    "process": "compound.tables.jobs:process_table",
    "aprocess": "compound.tables.jobs:aprocess_table",
    "TableRun": "compound.tables.jobs",
    "read_table": "compound.tables.io",
    "write_table": "compound.tables.io",
    "run_on_ray": "compound.tables.ray_runner:run_table_on_ray",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
