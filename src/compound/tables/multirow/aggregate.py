"""``aggregate(df, instruction, by=...)``: one answer per group of rows (or for the whole table), over every row.

No silent truncation. A group whose rows fit the model's context is answered in one call. A larger one is
folded: its rows are packed, in order, into parts that fit; each part is summarised for the instruction; the
summaries are packed and summarised again until they fit, and the last call answers for the whole group.
A row longer than the context alone is cut into pieces, each folded like a row. Every row reaches the
answer, directly or through summaries, and the output says how:

- ``rows``: the rows of the group;
- ``folded``: the rows the final call saw only through a summary (0 when the group fit);
- ``dropped``: the rows of a part whose summary never came back (a reply that never parsed, a part still
  too long); the job lists the reason under ``failed``. 0 unless something failed.

The context is ``context_tokens`` (default: the configured ``n_ctx``), less the reply's ``max_tokens`` and
the instruction; a text's tokens are estimated at three characters each, which over-counts English for the
embedded models' tokenizers, so a part that fits the estimate fits the model. ``bound`` is the most calls
the folding can make, computed before any call with every summary at its longest.
"""

from __future__ import annotations

from typing import Any

from compound.core.settings import get_settings
from compound.models.typed import model_with
from compound.program.module import Module
from compound.program.predict import Predict, Signature
from compound.program.rows import RowInput, render_row
from compound.tables.io import TableError, require_columns
from compound.tables.multirow.staged import RunStage, StagedOp, failed
from compound.tables.operators import _inputs

_SEPARATOR = "\n---\n"
#: the prompt's fixed part (system message, field names, format note), in estimated tokens
_OVERHEAD = 96


def tokens(text: str) -> int:
    """An over-estimate of ``text``'s tokens (three characters a token)."""
    return len(text) // 3 + 1


class Item:
    """A row (or a piece of one), or a summary of several, and how many rows it covers."""

    __slots__ = ("text", "rows", "summary")

    def __init__(self, text: str, rows: int, summary: bool) -> None:
        self.text, self.rows, self.summary = text, rows, summary


def pack(items: list[Item], room: int) -> list[list[Item]]:
    """Consecutive items in parts of at most ``room`` tokens (an item larger than ``room`` alone in its part)."""
    parts: list[list[Item]] = []
    size = 0
    for item in items:
        need = tokens(item.text) + tokens(_SEPARATOR)
        if parts and size + need <= room:
            parts[-1].append(item)
            size += need
        else:
            parts.append([item])
            size = need
    return parts


class AggregateOp(StagedOp):
    name = "aggregate"

    def __init__(
        self,
        df: Any,
        instruction: str,
        *,
        by: str | None = None,
        column: str = "summary",
        input_columns: list[str] | None = None,
        model: Any = None,
        program: Module | None = None,
        context_tokens: int | None = None,
        max_tokens: int = 256,
    ) -> None:
        super().__init__()
        if len(df) == 0:
            raise TableError("aggregate: the table has no rows")
        if not instruction or not instruction.strip():
            raise TableError("aggregate needs an instruction, e.g. 'summarise the complaints'")
        if by is not None:
            require_columns(df, [by])
        self.df, self.by, self.column = df, by, column
        self.cols = _inputs(df, input_columns, exclude=[c for c in (by, column) if c])
        context = context_tokens or get_settings().n_ctx
        self.summary_cap = max_tokens * 4 // 3 + 1  # a reply of max_tokens, counted like any text here
        self.room = context - max_tokens - tokens(instruction) - _OVERHEAD
        if self.room < 2 * (self.summary_cap + tokens(_SEPARATOR)):
            raise TableError(
                f"aggregate: a context of {context} tokens leaves {self.room} for the rows, too little to fold two "
                f"summaries of up to {max_tokens} tokens; give a larger context_tokens or a smaller max_tokens"
            )
        self.output_columns = self.written_columns = [column]
        out = model_with("Aggregate", {column: (str, ...)})
        text = (
            f"{instruction}\nThe input holds rows of a table, or summaries of parts of them; "
            "answer for all of it, briefly."
        )
        self.program = program or Predict(
            Signature(RowInput, out, text), model=model, max_tokens=max_tokens, output_format="text"
        )
        self.groups = self._groups()
        self.rows = len(df)
        self.bound = sum(self._calls(items) for _, items in self.groups)
        self.spec = {
            "op": "aggregate",
            "instruction": instruction,
            "by": by,
            "column": column,
            "input_columns": self.cols,
            "context_tokens": context,
            "max_tokens": max_tokens,
        }

    def _groups(self) -> list[tuple[Any, list[Item]]]:
        frames = [(None, self.df)] if self.by is None else list(self.df.groupby(self.by, sort=True, dropna=False))
        return [(key, [piece for _, r in grp.iterrows() for piece in self._pieces(r)]) for key, grp in frames]

    def _pieces(self, row: Any) -> list[Item]:
        """A row as one item, or as several pieces (the first covering the row) if it is longer than the room."""
        text = render_row(row, self.cols)
        if tokens(text) <= self.room - tokens(_SEPARATOR):
            return [Item(text, 1, False)]
        width = (self.room - tokens(_SEPARATOR) - 1) * 3
        return [Item(text[i : i + width], 1 if i == 0 else 0, False) for i in range(0, len(text), width)]

    def _calls(self, items: list[Item]) -> int:
        """The most calls folding ``items`` can make: every summary at its longest."""
        calls = 0
        while not self._fits(items):
            parts = pack(items, self.room)
            calls += len(parts)
            items = [Item("x" * (self.summary_cap * 3), sum(i.rows for i in p), True) for p in parts]
        return calls + 1

    def _fits(self, items: list[Item]) -> bool:
        return len(pack(items, self.room)) == 1

    def _header(self, key: Any, part: str) -> str:
        where = "the whole table" if self.by is None else f"{self.by} = {key}"
        return f"{where}{part}\n"

    async def _plan(self, run: RunStage) -> Any:
        pending = dict(enumerate(self.groups))  # group number -> (key, items not yet answered for)
        answer: dict[int, Any] = {}
        folded = {g: 0 for g in pending}
        dropped = {g: 0 for g in pending}
        levels = 0
        while pending:
            tasks: list[tuple[Any, str]] = []
            covered: dict[Any, list[Item]] = {}
            for g, (key, items) in pending.items():
                if self._fits(items):
                    folded[g] = sum(i.rows for i in items if i.summary)
                    tasks.append(((g, levels, -1), self._header(key, "") + _SEPARATOR.join(i.text for i in items)))
                    continue
                parts = pack(items, self.room)
                for p, part in enumerate(parts):
                    rows = sum(i.rows for i in part)
                    label = f" (part {p + 1} of {len(parts)}, covering {rows} rows)"
                    tasks.append(((g, levels, p), self._header(key, label) + _SEPARATOR.join(i.text for i in part)))
                    covered[(g, levels, p)] = part
            answers = await run(tasks)
            following: dict[int, tuple[Any, list[Item]]] = {}
            for task, _ in tasks:
                g = task[0]
                out = answers.get(task)
                if task[2] == -1:
                    answer[g] = None if failed(out) else out[self.column]  # type: ignore[index]
                    continue
                following.setdefault(g, (pending[g][0], []))
                rows = sum(i.rows for i in covered[task])
                if failed(out):
                    dropped[g] += rows
                else:
                    following[g][1].append(Item(str(out[self.column]), rows, True))  # type: ignore[index]
            for g, (_, items) in following.items():
                if not items:  # every part of the group failed: no answer, every row counted as dropped
                    answer[g] = None
            pending = {g: v for g, v in following.items() if v[1]}
            levels += 1
        self.report.update(
            groups=len(self.groups),
            folded=sum(folded.values()),
            dropped=sum(dropped.values()),
            levels=levels,
        )
        return self._output(answer, folded, dropped)

    def _output(self, answer: dict[int, Any], folded: dict[int, int], dropped: dict[int, int]) -> Any:
        import pandas as pd

        counts = [sum(i.rows for i in items) for _, items in self.groups]
        table: dict[str, list[Any]] = {} if self.by is None else {self.by: [key for key, _ in self.groups]}
        table[self.column] = [answer.get(g) for g in range(len(self.groups))]
        table["rows"] = counts
        table["folded"] = [folded[g] for g in range(len(self.groups))]
        table["dropped"] = [dropped[g] for g in range(len(self.groups))]
        return pd.DataFrame(table)


def aggregate(df: Any, instruction: str, **kwargs: Any) -> AggregateOp:
    """One answer per group of ``by`` (or for the table) over every row (see the module's docstring)."""
    return AggregateOp(df, instruction, **kwargs)
