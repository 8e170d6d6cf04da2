"""Tables: semantic operators over pandas DataFrames, files in and out, and durable batch jobs.

    import compound
    op = compound.tables.classify(df, "sentiment", ["positive", "negative"], model="smollm2-135m")
    labelled = compound.process_table(op, df).df

Each operator (``classify``, ``extract``, ``impute``, ``map``, ``filter``, ``describe``) builds a
``compound.TableOp`` (a plan: rows, program, output columns); ``compound.process_table`` runs it.
This package exports the operators (under the names they are defined by in ``tables.operators``),
``RayRunner`` and ``run_on_ray`` (jobs on a Ray cluster); everything else about tables is ``compound.X`` (``read_table``, ``write_table``,
``process_table``, ``TableRun``...). ``map`` and ``filter`` are reached as ``compound.tables.map``; they
never shadow the builtins.

The operators over several rows (``join``, ``top_k``, ``aggregate``, ``dedup``) build a ``StagedOp`` (a
plan of stages, each a ``TableOp``), which ``compound.process_table`` runs the same way, under one job:

    matched = compound.process_table(compound.tables.join(papers, topics, "the paper is about the topic"), None).df
"""

from __future__ import annotations

from compound._lazy import lazy_exports

_EXPORTS = {
    "classify": "compound.tables.operators",
    "extract": "compound.tables.operators",
    "impute": "compound.tables.operators",
    "map": "compound.tables.operators",
    "filter": "compound.tables.operators",
    "describe": "compound.tables.operators",
    "join": "compound.tables.multirow.join",
    "top_k": "compound.tables.multirow.top_k",
    "aggregate": "compound.tables.multirow.aggregate",
    "dedup": "compound.tables.multirow.dedup",
    "run_on_ray": "compound.tables.ray_runner:run_table_on_ray",
    "RayRunner": "compound.tables.ray_runner",
}

#: second homes of names whose one home is the package root: they warn (DeprecationWarning) and still work
_DEPRECATED = {
    "TableOp": ("compound.tables.operators:TableOp", "compound.TableOp"),
    "process": ("compound.tables.jobs:process_table", "compound.process_table"),
    "aprocess": ("compound.tables.jobs:aprocess_table", "compound.aprocess_table"),
    "TableRun": ("compound.tables.jobs:TableRun", "compound.TableRun"),
    "read_table": ("compound.tables.io:read_table", "compound.read_table"),
    "write_table": ("compound.tables.io:write_table", "compound.write_table"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _DEPRECATED)
