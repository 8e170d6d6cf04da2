"""What ``compound table`` runs: a table operator over a file, as a durable job that can be resumed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compound.core.budget import budget
from compound.core.errors import ConfigurationError
from compound.tables.io import TableError, read_table, write_table
from compound.tables.jobs import TableRun, job_store, new_job_id, process_table
from compound.tables.operators import OPERATORS

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def parse_fields(text: str) -> dict[str, Any]:
    """``"name:str,age:int"`` -> {"name": str, "age": int}."""
    fields = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, typ = part.partition(":")
        if (typ or "str") not in _TYPES:
            raise ConfigurationError(f"field {name!r}: unknown type {typ!r}; use one of {', '.join(_TYPES)}")
        fields[name.strip()] = _TYPES[typ or "str"]
    if not fields:
        raise ConfigurationError("--fields needs at least one NAME[:TYPE]")
    return fields


def build_op(spec: dict[str, Any], df: Any) -> Any:
    op = spec["op"]
    if op not in OPERATORS:
        raise ConfigurationError(f"unknown table operation {op!r}; use one of {', '.join(OPERATORS)}")
    model = spec.get("model")
    cols = spec.get("input_columns")
    need = {
        "map": ["column", "instruction"],
        "classify": ["column", "labels"],
        "extract": ["source", "fields"],
        "filter": ["condition"],
        "impute": ["column"],
        "describe": [],
    }[op]
    missing = [k for k in need if not spec.get(k)]
    if missing:
        raise ConfigurationError(f"compound table {op} needs " + ", ".join(f"--{k.replace('_', '-')}" for k in missing))
    if op == "map":
        return OPERATORS[op](df, spec["column"], spec["instruction"], input_columns=cols, model=model)
    auto = "auto" if spec.get("auto") else None
    if auto and op not in ("classify", "impute"):
        raise ConfigurationError(f"--auto applies to classify and impute, not {op}")
    if op == "classify":
        return OPERATORS[op](
            df,
            spec["column"],
            spec["labels"],
            instruction=spec.get("instruction"),
            input_columns=cols,
            model=model,
            program=auto,
        )
    if op == "extract":
        return OPERATORS[op](
            df, spec["source"], parse_fields(spec["fields"]), instruction=spec.get("instruction"), model=model
        )
    if op == "filter":
        return OPERATORS[op](df, spec["condition"], input_columns=cols, model=model)
    if op == "impute":
        return OPERATORS[op](df, spec["column"], input_columns=cols, model=model, program=auto)
    return OPERATORS[op](
        df,
        spec.get("column") or "description",
        by=spec.get("by"),
        instruction=spec.get("instruction"),
        input_columns=cols,
        model=model,
    )


def run_file_job(
    spec: dict[str, Any] | None,
    *,
    resume: str | None = None,
    limits: dict[str, Any] | None = None,
    progress: bool = True,
) -> tuple[TableRun, Path]:
    store = job_store()
    if resume is not None:
        job = store.get(resume)
        if job is None:
            raise ConfigurationError(f"no job {resume!r}; see: compound jobs")
        spec, job_id = job["spec"], resume
    else:
        if spec is None:
            raise ConfigurationError("give a job spec, or resume= the id of a job to finish")
        job_id = spec.get("job_id") or new_job_id()
        if store.get(job_id) is not None:
            raise ConfigurationError(
                f"job {job_id!r} exists already; resume it with --resume {job_id} or pick another id"
            )
        spec = {**spec, "input": str(Path(spec["input"]).resolve()), "out": str(Path(spec["out"]).resolve())}
    df = read_table(spec["input"])
    with budget(**{k: v for k, v in (limits or {}).items() if v is not None}):
        op = build_op(spec, df)  # with --auto this teaches (labelling, training), under the same budget
        result = process_table(op, df, job_id=job_id, spec=spec, progress=progress)
    result.setup = op.setup
    out = write_table(result.df, spec["out"])
    return result, out


__all__ = ["run_file_job", "build_op", "parse_fields", "TableError"]
