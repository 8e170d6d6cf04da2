"""Semantic operators on DataFrames: map, filter, classify, extract, impute, describe.

Each operator is compiled into a ``TableOp``: which rows to process, the text each row is shown as, the
program that computes the new values (a typed ``Predict`` by default, or any program or strategy you
pass, a cascade included), and how the outputs go back into the table. ``process_table`` executes it, with
deduplication, caching, progress, budgets and (with a job id) checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from compound.core.fingerprint import fingerprint
from compound.models.typed import model_with
from compound.program.module import Module
from compound.program.predict import Predict, Signature
from compound.program.rows import RowInput, is_missing, render_row, render_values
from compound.tables.io import TableError, check_column_types, missing_cells, require_columns

#: a row whose reply never parsed carries this key in its output, with the reason
ERROR_KEY = "__error__"


def row_tasks(df: Any, columns: list[str], positions: Sequence[int] | None = None) -> list[tuple[int, str]]:
    """(position, rendered row) for every row of ``df`` (or the rows at ``positions``). A row is its
    position in the frame plus its content; its index label plays no part (labels repeat after
    ``pd.concat``, and a label may be a tuple or NaN)."""
    frame = df[columns] if positions is None else df[columns].iloc[list(positions)]
    places = range(len(df)) if positions is None else positions
    return [
        (int(p), render_values(columns, values))
        for p, values in zip(places, frame.itertuples(index=False, name=None), strict=True)
    ]


@dataclass
class TableOp:
    name: str
    program: Module
    output_columns: list[str]
    #: (row position, rendered input) for the rows to process: the position in the frame (0 for its first row),
    #: never the index label, which may repeat (``pd.concat``), be a tuple (MultiIndex) or be NaN
    tasks: list[tuple[int, str]]
    apply: Callable[[Any, dict[int, dict[str, Any]]], Any]  # (df, outputs by row position) -> new df
    spec: dict[str, Any] = field(default_factory=dict)
    #: what building the op learned and spent once (``program="auto"``): counted in the job's total
    setup: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the program or the operation would give other outputs."""
        return fingerprint(self.name, self.output_columns, self.program.identity(), _output_schema(self.program))


def _output_schema(program: Module) -> Any:
    sig = getattr(program, "signature", None)
    return sig.outputs.model_json_schema() if sig is not None else type(program).__qualname__


def _step(
    output: type[BaseModel],
    instruction: str,
    model: Any,
    program: Module | None,
    demos: list[dict] | None = None,
    output_format: str = "json",
) -> Module:
    if program is not None:
        return program
    sig = Signature(RowInput, output, instruction)
    return Predict(sig, model=model, demos=demos, max_tokens=256, output_format=output_format)


def _program(program: Module | str | None) -> Module | None:
    if isinstance(program, str):
        raise TableError(f'program must be a Module, None or "auto", not {program!r}')
    return program


def _teacher(labels: list[str], column: str, model: Any, text: str) -> Any:
    from compound.optimize.staged import classify_teacher

    return classify_teacher(labels, column, model, text)


def _staged(
    texts: list[str],
    labels: list[str],
    column: str,
    model: Any,
    text: str,
    target: float | None,
    delta: float,
    examples: Any = None,
    seed: int = 0,
) -> Any:
    from compound.optimize.staged import plan_classify

    return plan_classify(
        texts,
        labels,
        field=column,
        model=model,
        instruction=text,
        target=target,
        delta=delta,
        examples=examples,
        seed=seed,
    )


def _classify_rows(
    df: Any,
    column: str,
    labels: list[str],
    instruction: str | None,
    input_columns: list[str] | None,
    label_column: str | None = None,
) -> tuple[list[str], str, list[tuple[int, str]]]:
    """(input columns, instruction, (row position, rendered row) per row) of a classify operation."""
    if len(labels) < 2:
        raise TableError("classify needs at least two labels")
    if label_column is not None and label_column in (input_columns or []):
        raise TableError(
            f"the label column {label_column!r} is among the input columns: the model and the students would read "
            "the answer; leave it out of --input-columns"
        )
    cols = _inputs(df, input_columns, exclude=[column, *([label_column] if label_column else [])])
    text = instruction or f"Classify the row: choose the {column} from: {', '.join(labels)}."
    return cols, text, row_tasks(df, cols)


def classify_forecast(
    df: Any,
    column: str,
    labels: list[str],
    *,
    instruction: str | None = None,
    input_columns: list[str] | None = None,
    model: Any = None,
    examples: Any = None,
    label_column: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """What ``classify(..., program="auto")`` is forecast to cost on ``df``, and the large model alone
    (``compound.optimize.staged.forecast_before``: a few teacher labels and embeddings are measured). The
    examples, if any, are checked first, and the teacher's answers on those it will be asked are counted."""
    from compound.core.concurrency import run_sync
    from compound.optimize.staged import forecast_before

    cols, text, tasks = _classify_rows(df, column, labels, instruction, input_columns, label_column)
    gold = _examples(df, cols, column, labels, examples, label_column, "auto")
    return run_sync(forecast_before([t for _, t in tasks], _teacher(labels, column, model, text), examples=gold))


def _examples(
    df: Any, cols: list[str], column: str, labels: list[str], examples: Any, label_column: str | None, program: Any
) -> Any:
    """``classify``'s gold examples (``optimize.examples.Examples``) from ``examples`` or ``label_column``,
    checked; None when neither is given."""
    from pathlib import Path

    from compound.optimize.examples import check_examples
    from compound.tables.io import read_rows

    if examples is None and label_column is None:
        return None
    if program != "auto":
        raise TableError('examples teach auto\'s students: add program="auto" (on the command line, --auto)')
    if examples is not None and label_column is not None:
        raise TableError("give the examples once: a file of them, or a label column of the input, not both")
    if label_column is not None:
        require_columns(df, [label_column])
        where = f"the input's label column {label_column!r}"
        filled = [p for p, v in enumerate(df[label_column].tolist()) if not is_missing(v)]
        gold = df[label_column].tolist()
        rows = [(f"row {p + 1}", text, gold[p]) for p, text in row_tasks(df, cols, filled)]
        return check_examples(rows, labels, where, repeats_allowed=True)
    where = str(examples) if isinstance(examples, str | Path) else "the examples"
    frame: Any = read_rows(examples) if isinstance(examples, str | Path) else examples
    if not hasattr(frame, "columns"):
        raise TableError(f"examples must be a DataFrame or a file path, not {type(frame).__name__}")
    missing = [c for c in [*cols, column] if c not in frame.columns]
    if missing:
        raise TableError(
            f"{where}: no column {', '.join(repr(c) for c in missing)}; the examples need the input columns "
            f"({', '.join(repr(c) for c in cols)}; choose them with --input-columns) and a {column!r} column with "
            f"each row's label; its columns are: {', '.join(str(c) for c in frame.columns)}"
        )
    gold = frame[column].tolist()
    rows = [(f"example row {p + 1}", text, gold[p]) for p, text in row_tasks(frame, cols)]
    return check_examples(rows, labels, where)


def _auto(make: Callable[[], Any]) -> tuple[Module, dict[str, Any]]:
    """Run the one-time teaching step now (under the caller's budget and run) and return its program."""
    from compound.core.concurrency import run_sync

    cascade, report = run_sync(make())
    return cascade, report


def _assign(columns: list[str]) -> Callable[[Any, dict[Any, dict[str, Any]]], Any]:
    def apply(df: Any, outputs: dict[int, dict[str, Any]]) -> Any:
        out = df.copy()
        for c in columns:
            values = [outputs.get(p, {}).get(c) for p in range(len(out))]
            if c in df.columns:
                old = df[c].tolist()
                values = [v if p in outputs else old[p] for p, v in enumerate(values)]
            out[c] = values
        return out

    return apply


def _inputs(df: Any, input_columns: list[str] | None, exclude: Sequence[str] = ()) -> list[str]:
    cols = input_columns or [c for c in df.columns if c not in exclude]
    require_columns(df, cols)
    return cols


def map(
    df: Any,
    column: str,
    instruction: str,
    *,
    type_: Any = str,
    input_columns: list[str] | None = None,
    model: Any = None,
    program: Module | None = None,
) -> TableOp:
    """A new column ``column`` from an instruction, typed ``type_``.

    A ``str`` column is asked for as plain text (the reply is the value; no JSON schema, which free text
    does not need and which costs CPU on some servers); any other type as JSON under its schema."""
    cols = _inputs(df, input_columns)
    out = model_with("MapOutput", {column: (type_, ...)})
    step = _step(out, instruction, model, program, output_format="text" if type_ is str else "json")
    return TableOp(
        "map",
        step,
        [column],
        row_tasks(df, cols),
        _assign([column]),
        {"op": "map", "column": column, "instruction": instruction, "input_columns": cols},
    )


def classify(
    df: Any,
    column: str,
    labels: list[str],
    *,
    instruction: str | None = None,
    input_columns: list[str] | None = None,
    model: Any = None,
    program: Module | str | None = None,
    target: float | None = None,
    delta: float = 0.1,
    examples: Any = None,
    label_column: str | None = None,
    seed: int = 0,
) -> TableOp:
    """A new column ``column`` holding one of ``labels`` per row.

    ``program="auto"``: the large model (or ``model``) labels rows of the job in rounds and teaches the
    students that pay for this job's length, each answering the rows it is certified for (see
    ``compound.optimize.staged``): with probability at least ``1 - delta``, a stage's answers agree with
    the model's at ``target`` (default 0.9 without examples) or better, and the job never costs more than 1.05x the model
    alone (``compound.optimize.planner``).

    With ``examples`` (a DataFrame, or a CSV, Excel, Parquet or JSON Lines file, holding the input columns
    and a ``column`` of gold labels; 20 rows at least) or ``label_column`` (a column of ``df`` whose filled
    cells are gold labels: those rows are the examples, and their answers are their own labels), the
    target is accuracy on gold: by default the model's own accuracy on the held-out half of the examples,
    which is measured and reported, so a student that beats the model is certified to answer rows
    (``compound.optimize.examples``). ``seed`` fixes ``auto``'s random draws (the rows labelled, the
    hold-out): the same seed plans the same way on the same rows; other seeds show how much a plan varies."""
    cols, text, tasks = _classify_rows(df, column, labels, instruction, input_columns, label_column)
    out = model_with("Label", {column: (Literal[tuple(labels)], ...)})  # type: ignore[valid-type]
    setup: dict[str, Any] = {}
    gold = _examples(df, cols, column, labels, examples, label_column, program)
    if program == "auto":
        texts = [t for _, t in tasks]
        program, setup = _auto(lambda: _staged(texts, labels, column, model, text, target, delta, gold, seed))
    step = _step(out, text, model, _program(program))
    spec = {"op": "classify", "column": column, "labels": labels, "instruction": text, "input_columns": cols}
    return TableOp("classify", step, [column], tasks, _assign([column]), spec, setup)


def extract(
    df: Any,
    source: str,
    fields: dict[str, Any],
    *,
    instruction: str | None = None,
    model: Any = None,
    program: Module | None = None,
) -> TableOp:
    """Several typed columns extracted from the text in ``source``; a field may be missing (None)."""
    require_columns(df, [source])
    out = model_with("Extracted", {name: (t | None, None) for name, t in fields.items()})
    text = instruction or f"Extract {', '.join(fields)} from the {source}. Use null when a value is not given."
    step = _step(out, text, model, program)
    return TableOp(
        "extract",
        step,
        list(fields),
        row_tasks(df, [source]),
        _assign(list(fields)),
        {
            "op": "extract",
            "source": source,
            "fields": {k: getattr(v, "__name__", str(v)) for k, v in fields.items()},
            "instruction": text,
        },
    )


def filter(
    df: Any, condition: str, *, input_columns: list[str] | None = None, model: Any = None, program: Module | None = None
) -> TableOp:
    """Keep the rows for which ``condition`` holds."""
    cols = _inputs(df, input_columns)
    out = model_with("Keep", {"keep": (bool, ...)})
    step = _step(out, f"Does the row meet this condition? {condition}", model, program)

    def apply(frame: Any, outputs: dict[int, dict[str, Any]]) -> Any:
        return frame[[bool(outputs.get(p, {}).get("keep")) for p in range(len(frame))]]

    return TableOp(
        "filter",
        step,
        ["keep"],
        row_tasks(df, cols),
        apply,
        {"op": "filter", "condition": condition, "input_columns": cols},
    )


def impute(
    df: Any,
    column: str,
    *,
    input_columns: list[str] | None = None,
    examples: int = 6,
    model: Any = None,
    program: Module | str | None = None,
    max_categories: int = 20,
    target: float = 0.9,
    delta: float = 0.1,
) -> TableOp:
    """Fill the missing cells of ``column`` from the other columns of the row, with complete rows as examples.

    ``program="auto"`` (a column of categories): the complete rows are labelled data. A logistic
    regression on the other columns learns from them and, certified on them (out of fold) at ``target``
    agreement (failure probability ``delta``), fills the cells it is sure of; the others go to the model (the large one by default) with a
    short prompt (no demo rows: it sees few cells, and demo rows would multiply its prompt)."""
    require_columns(df, [column])
    kind = check_column_types(df, column)
    cols = _inputs(df, input_columns, exclude=[column])
    missing = missing_cells(df[column], kind)
    known = df[~missing]
    if known.empty:
        raise TableError(f"column {column!r} has no filled cells to learn from")
    categories = sorted(str(v) for v in known[column].unique())
    if kind == "number":
        type_: Any = float
    elif len(categories) <= max_categories:
        type_ = Literal[tuple(categories)]  # type: ignore[valid-type]
    else:
        type_ = str
    out = model_with("Imputed", {column: (type_, ...)})
    complete = known.dropna(subset=cols)
    sample = complete.sample(n=min(examples, len(complete)), random_state=0) if len(complete) else known.head(examples)
    demos = [
        {"row": render_row(r, cols), column: (float(r[column]) if kind == "number" else str(r[column]))}
        for _, r in sample.iterrows()
    ]
    instruction = f"Fill in the missing {column} of the row, judging from its other columns."
    tasks = row_tasks(df, cols, [p for p, m in enumerate(missing.tolist()) if m])
    setup: dict[str, Any] = {}
    if program == "auto":
        if kind == "number" or len(categories) > max_categories:
            raise TableError(f"impute --auto fills columns of categories; {column!r} is not one")
        program, setup = _auto(
            lambda: _impute_auto(known, column, cols, categories, tasks, model, target, delta, instruction)
        )
    step = _step(out, instruction, model, _program(program), demos)
    spec = {"op": "impute", "column": column, "input_columns": cols, "examples": examples}
    return TableOp("impute", step, [column], tasks, _assign([column]), spec, setup)


def _impute_auto(
    known: Any,
    column: str,
    cols: list[str],
    categories: list[str],
    tasks: list,
    model: Any,
    target: float,
    delta: float,
    instruction: str,
) -> Any:
    from compound.core.settings import get_settings
    from compound.optimize.auto import teach
    from compound.optimize.labels import label_step
    from compound.optimize.students.stage import ProxyStage
    from compound.optimize.students.tabular import TabularClassifier

    gold = [(render_row(r, cols), str(r[column])) for _, r in known.iterrows()]
    # the teacher answers the few cells the student leaves with a short prompt and no demos: demo rows
    # (per-row nearest ones, or a fixed set) make its prompts long, and its few calls would then cost most
    # of what the large model spends on every row with a cached demo prefix
    teacher = label_step(categories, model or get_settings().large, column, instruction)
    return teach(
        [t for _, t in tasks],
        categories,
        field=column,
        student=ProxyStage("tabular", TabularClassifier()),
        teacher_step=teacher,
        gold=gold,
        target=target,
        delta=delta,
    )


def describe(
    df: Any,
    column: str = "description",
    *,
    by: str | None = None,
    instruction: str | None = None,
    input_columns: list[str] | None = None,
    model: Any = None,
    program: Module | None = None,
) -> Any:
    """One sentence per row, or per group of rows sharing a value of ``by``.

    With ``by`` this is ``aggregate`` (``tables.aggregate``): every row of a group reaches the answer, the
    rows that do not fit the context through summaries, and the output says how many were folded."""
    cols = _inputs(df, input_columns, exclude=[column])
    if by is not None:
        from compound.tables.multirow.aggregate import AggregateOp

        text = instruction or "Describe this group of rows in one sentence."
        op = AggregateOp(df, text, by=by, column=column, input_columns=cols, model=model, program=program)
        op.spec = {"op": "describe", "column": column, "by": by, "input_columns": op.cols}
        return op
    out = model_with("Description", {column: (str, ...)})
    step = _step(out, instruction or "Describe the row in one sentence.", model, program)
    return TableOp(
        "describe",
        step,
        [column],
        row_tasks(df, cols),
        _assign([column]),
        {"op": "describe", "column": column, "input_columns": cols},
    )


OPERATORS: dict[str, Callable[..., TableOp]] = {
    "map": map,
    "filter": filter,
    "classify": classify,
    "extract": extract,
    "impute": impute,
    "describe": describe,
}


#: the names the operators had before they were exported under the names they are defined by
_OLD_NAMES = {f"{name}_op": name for name in OPERATORS}


def __getattr__(name: str) -> Any:
    if name in _OLD_NAMES:
        from compound._deprecated import warn_renamed

        warn_renamed(f"compound.tables.operators.{name}", f"compound.tables.{_OLD_NAMES[name]}")
        return OPERATORS[_OLD_NAMES[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
