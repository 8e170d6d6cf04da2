"""What ``compound table`` runs: a table operator over a file, as a durable job that can be resumed.

Before any row is computed the job takes its lock, reads the input faithfully and checks the output (format,
engine, folder, not the input, no sheet dropped). A column named with surrounding spaces (`` price ``) is
found by its stripped name, as the command line gives it; a workbook's other sheets are reported. The output is written atomically and only then is the job
marked ``done``. ``--resume`` takes every option from the job: an option given again with another value is
refused, except ``--out`` (a new output, after one that could not be written). A resume over an input that changed since the job started is reported (``TableRun.notes``); rows
are matched by content, so no result is ever attached to another row.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

from compound.core.budget import budget
from compound.core.errors import ConfigurationError
from compound.tables.io import TableError, check_output, open_table, write_table
from compound.tables.joblock import check_job_id, job_lock
from compound.tables.jobs import TableRun, job_store, mark_done, new_job_id, process_table
from compound.tables.multirow.staged import StagedOp
from compound.tables.operators import OPERATORS
from compound.tables.runner import Runner

_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def parse_fields(text: str) -> dict[str, Any]:
    """``"name:str,age:int"`` -> {"name": str, "age": int}."""
    fields = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, typ = part.partition(":")
        name, typ = name.strip(), typ.strip()
        if not name:
            raise ConfigurationError(f"--fields {text!r}: {part!r} has no field name; write NAME[:TYPE], e.g. age:int")
        if (typ or "str") not in _TYPES:
            raise ConfigurationError(f"field {name!r}: unknown type {typ!r}; use one of {', '.join(_TYPES)}")
        if name in fields:
            raise ConfigurationError(f"--fields {text!r}: field {name!r} is given twice; give each field once")
        fields[name] = _TYPES[typ or "str"]
    if not fields:
        raise ConfigurationError("--fields needs at least one NAME[:TYPE]")
    return fields


#: the operators over several rows and the options each needs
MULTIROW = {
    "join": ["right", "condition"],
    "top_k": ["instruction", "k"],
    "aggregate": ["instruction"],
    "dedup": ["columns"],
}


def _need(spec: dict[str, Any], keys: list[str]) -> None:
    missing = [k for k in keys if spec.get(k) in (None, "", [])]
    if missing:
        raise ConfigurationError(
            f"compound table {spec['op']} needs " + ", ".join(f"--{k.replace('_', '-')}" for k in missing)
        )


def build_op(spec: dict[str, Any], df: Any) -> Any:
    op = spec["op"]
    if op in MULTIROW:
        _need(spec, MULTIROW[op])
        return _build_multirow(spec, df)
    if op not in OPERATORS:
        known = ", ".join([*OPERATORS, *MULTIROW])
        raise ConfigurationError(f"unknown table operation {op!r}; use one of {known}")
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
    _need(spec, need)
    if op == "map":
        return OPERATORS[op](df, spec["column"], spec["instruction"], input_columns=cols, model=model)
    auto = "auto" if spec.get("auto") else None
    if auto and op not in ("classify", "impute"):
        raise ConfigurationError(f"--auto applies to classify and impute, not {op}")
    gold = {k: spec[k] for k in ("examples", "label_column") if spec.get(k)}
    if gold and (op != "classify" or not auto):
        given = " and ".join(f"--{k.replace('_', '-')}" for k in gold)
        raise ConfigurationError(
            f"{given} teach classify --auto's students (extract has no --auto yet): use them with classify --auto"
        )
    if op == "classify":
        return OPERATORS[op](
            df,
            spec["column"],
            spec["labels"],
            instruction=spec.get("instruction"),
            input_columns=cols,
            model=model,
            program=auto,
            **_guarantee(spec),
            **gold,
        )
    if op == "extract":
        return OPERATORS[op](
            df, spec["source"], parse_fields(spec["fields"]), instruction=spec.get("instruction"), model=model
        )
    if op == "filter":
        return OPERATORS[op](df, spec["condition"], input_columns=cols, model=model)
    if op == "impute":
        return OPERATORS[op](df, spec["column"], input_columns=cols, model=model, program=auto, **_guarantee(spec))
    return OPERATORS[op](
        df,
        spec.get("column") or "description",
        by=spec.get("by"),
        instruction=spec.get("instruction"),
        input_columns=cols,
        model=model,
    )


def _build_multirow(spec: dict[str, Any], df: Any) -> Any:
    """``join``, ``top_k``, ``aggregate`` or ``dedup`` from a job's options (a ``StagedOp``)."""
    from compound.tables.multirow.aggregate import AggregateOp
    from compound.tables.multirow.dedup import DedupOp
    from compound.tables.multirow.join import JoinOp
    from compound.tables.multirow.top_k import TopKOp

    op, model, cols = spec["op"], spec.get("model"), spec.get("input_columns")
    block: dict[str, Any] = {"block_k": int(spec["block_k"])} if spec.get("block_k") else {}
    if op == "join":
        certify: dict[str, Any] = {
            k: float(spec[k]) for k in ("recall", "precision", "delta") if spec.get(k) is not None
        }
        if certify and not spec.get("cascade"):
            raise ConfigurationError("--recall, --precision and --delta set the cascade's guarantee: add --cascade")
        right, _ = open_table(spec["right"], encoding=spec.get("encoding"), delimiter=spec.get("delimiter"))
        return JoinOp(
            df,
            right,
            spec["condition"],
            left_columns=cols,
            model=model,
            cascade=bool(spec.get("cascade")),
            **certify,
            **block,
        )
    if op == "top_k":
        return TopKOp(
            df,
            spec["instruction"],
            int(spec["k"]),
            input_columns=cols,
            model=model,
            column=spec.get("column") or "rank",
        )
    if op == "aggregate":
        context: dict[str, Any] = {"context_tokens": int(spec["context_tokens"])} if spec.get("context_tokens") else {}
        return AggregateOp(
            df,
            spec["instruction"],
            by=spec.get("by"),
            column=spec.get("column") or "summary",
            input_columns=cols,
            model=model,
            **context,
        )
    return DedupOp(
        df,
        spec["columns"],
        instruction=spec.get("instruction"),
        model=model,
        column=spec.get("column") or "duplicate_of",
        **block,
    )


def auto_forecast(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The forecast of ``classify --auto`` on the job's input, before the job (``operators.classify_forecast``)."""
    from compound.tables.operators import classify_forecast

    if spec.get("op") != "classify" or not spec.get("auto"):
        raise ConfigurationError("a forecast is made for table classify --auto")
    if not spec.get("column") or not spec.get("labels"):
        raise ConfigurationError("compound table classify needs --column, --labels")
    df, _ = open_table(
        spec["input"], sheet=spec.get("sheet"), encoding=spec.get("encoding"), delimiter=spec.get("delimiter")
    )
    return classify_forecast(
        df,
        spec["column"],
        spec["labels"],
        instruction=spec.get("instruction"),
        input_columns=spec.get("input_columns"),
        model=spec.get("model"),
        examples=spec.get("examples"),
        label_column=spec.get("label_column"),
    )


def _guarantee(spec: dict[str, Any]) -> dict[str, float]:
    """``--target``/``--delta`` where given (the operator's defaults otherwise)."""
    return {k: float(spec[k]) for k in ("target", "delta") if spec.get(k) is not None}


#: options that are settings of this run, not of the job: they may differ on --resume (a new --out, after
#: an output that could not be written, say)
_PER_RUN = ("job_id", "out")


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolved(spec: dict[str, Any]) -> dict[str, Any]:
    paths = ("input", "out", "right", "examples")
    return {**spec, **{k: str(Path(spec[k]).resolve()) for k in paths if spec.get(k)}}


def _check_resume_options(job_id: str, job_spec: dict[str, Any], given: dict[str, Any] | None) -> None:
    given = _resolved({k: v for k, v in (given or {}).items() if v is not None and k not in _PER_RUN})
    differ = [k for k, v in given.items() if job_spec.get(k) != v]
    if differ:
        shown = "; ".join(f"--{k.replace('_', '-')} {given[k]!r} (the job has {job_spec.get(k)!r})" for k in differ)
        raise ConfigurationError(
            f"--resume {job_id} takes its options from the job, but these differ: {shown}; drop them to resume, "
            "or start a new job to change them"
        )


#: the spec's options that name existing columns
_COLUMN_OPTIONS = ("source", "by", "label_column")


def resolve_column_names(spec: dict[str, Any], df: Any) -> dict[str, Any]:
    """Names given on the command line lose their surrounding spaces; match each to the column it means (a
    column named `` price `` is named by ``price``) when exactly one column has that name once stripped."""

    def resolve(name: Any) -> Any:
        if not isinstance(name, str) or name in df.columns:
            return name
        matches = [c for c in df.columns if isinstance(c, str) and c.strip() == name.strip()]
        return matches[0] if len(matches) == 1 else name

    out = dict(spec)
    for key in _COLUMN_OPTIONS:
        out[key] = resolve(spec.get(key))
    if spec.get("op") == "impute":
        out["column"] = resolve(spec.get("column"))
    if spec.get("input_columns"):
        out["input_columns"] = [resolve(c) for c in spec["input_columns"]]
    return out


def _check_no_overwrite(spec: dict[str, Any], df: Any) -> None:
    """A file job adds columns; it never silently replaces one the input has (impute fills its own)."""
    op = spec.get("op")
    if op in ("map", "classify"):
        new = [spec.get("column")]
    elif op == "extract" and spec.get("fields"):
        new = list(parse_fields(spec["fields"]))
    elif op == "describe" and not spec.get("by"):
        new = [spec.get("column") or "description"]
    else:
        new = []
    clash = [c for c in new if c in df.columns]
    if clash:
        raise TableError(
            f"the input already has a column {clash[0]!r}, which the job would overwrite; give the new column "
            "another name (--column, or the --fields names), or use impute to fill its empty cells"
        )


def _written(op: Any, df: Any, result: TableRun) -> dict[str, Any]:
    """The cells the job wrote: each output column, with the rows written (None: the whole column)."""
    if isinstance(op, StagedOp):  # a new table: the columns a model wrote text into
        return {c: None for c in op.written_columns}
    rows = None if op.spec.get("by") else set(result.outputs or {})
    return {c: (rows if c in df.columns else None) for c in op.output_columns}


def run_file_job(
    spec: dict[str, Any] | None,
    *,
    resume: str | None = None,
    limits: dict[str, Any] | None = None,
    progress: bool = True,
    runner: Runner | None = None,
) -> tuple[TableRun, Path]:
    """Run a new job (``spec``) or finish one (``resume``; ``spec`` then holds only options given again),
    here or on the ``runner`` given (a ``RayRunner``: where rows are computed is not part of the job, so a
    job started on one runner resumes on another)."""
    store = job_store()
    if resume is None and spec is None:
        raise ConfigurationError("give a job spec, or resume= the id of a job to finish")
    job_id = check_job_id(resume or (spec or {}).get("job_id") or new_job_id())
    with job_lock(job_id):
        job = store.get(job_id)
        if resume is not None:
            if job is None:
                raise ConfigurationError(f"no job {resume!r}; see: compound jobs")
            _check_resume_options(job_id, job["spec"], spec)
            new_out = (spec or {}).get("out")
            spec = cast(dict[str, Any], job["spec"])
            if new_out is not None:
                spec = {**spec, "out": str(Path(new_out).resolve())}
                store.set_spec(job_id, spec)
        elif job is not None:
            raise ConfigurationError(
                f"job {job_id!r} exists already; resume it with --resume {job_id} or pick another id"
            )
        else:
            spec = _resolved(spec or {})
        df, source = open_table(
            spec["input"], sheet=spec.get("sheet"), encoding=spec.get("encoding"), delimiter=spec.get("delimiter")
        )
        try:
            out = check_output(spec["out"], source, sheet_chosen=bool(spec.get("sheet")))
        except TableError as e:
            if job is None:  # kept (nothing computed), so that --resume can be given another --out
                store.create(job_id, spec, "", 0)
                store.set_status(job_id, "failed")
            raise TableError(
                f"{e}\nnothing was computed; fix it with: compound table --resume {job_id} --out NEW"
            ) from None
        named = resolve_column_names(spec, df)  # the job keeps the names as given; the op gets the columns
        _check_no_overwrite(named, df)
        digest = _digest(spec["input"])
        changed = resume is not None and spec.get("input_sha256") not in (None, digest)
        spec = {**spec, "input_sha256": spec.get("input_sha256") or digest}
        if runner is not None:
            runner.reach()  # an unreachable cluster is an error before any work, --auto's teaching included
        with budget(**{k: v for k, v in (limits or {}).items() if v is not None}):
            # with --auto this teaches (labelling, training), under the same budget
            op = build_op({**named, "input_sha256": spec["input_sha256"]}, df)
            result = process_table(op, df, job_id=job_id, spec=spec, progress=progress, finish=False, runner=runner)
        result.setup = op.setup
        if len(source.sheets) > 1 and not spec.get("sheet"):
            others = [n for n in source.sheets if n != source.sheet]
            kept = "kept unchanged in the output" if out.suffix.lower() in (".xlsx", ".xlsm") else "not processed"
            result.notes.append(
                f"{source.path} has {len(source.sheets)} sheets: the job processed the first, {source.sheet!r}; the "
                f"others ({', '.join(map(repr, others))}) were {kept}; pick one with --sheet"
            )
        if changed or result.stale:
            result.notes.append(
                f"the input changed since job {job_id} started: rows are matched by content, so "
                f"{result.from_checkpoint} row input(s) came from the job's earlier run, {result.computed} were "
                f"computed now, and {result.stale} earlier result(s) match no row any more and were not used"
            )
        write_table(result.df, out, source=source, written=_written(op, df, result))
        mark_done(job_id)
    return result, out


__all__ = ["run_file_job", "build_op", "auto_forecast", "parse_fields", "TableError"]
