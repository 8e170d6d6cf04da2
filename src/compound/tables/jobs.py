"""Durable batch execution of table operators.

``process_table`` computes each distinct row input once (identical prompts share one call), serves rows
already computed from the row cache, and shows progress (rows, rate, ETA, cost and energy so far).
With a job id, every finished row is committed to SQLite before the next is reported, so a job stopped
by a crash, a ``kill -9`` or a budget resumes where it stopped: committed rows are never computed or
written again, and the output is written once, atomically, when every row is done.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from compound.core.errors import BudgetExceededError, CompoundError, OutputParseError
from compound.core.settings import get_settings
from compound.core.usage import Usage, UsageTracker, active_trackers, track_usage
from compound.store.sqlite import SQLiteStore
from compound.store.traces import span
from compound.tables.operators import TableOp

#: a row whose reply never parsed carries this key in its output, with the reason
ERROR_KEY = "__error__"


class JobStopped(CompoundError):
    """A job stopped early (a budget, say); its finished rows are saved and it can be resumed."""

    def __init__(self, job_id: str | None, done: int, total: int, cause: BaseException):
        self.job_id, self.done, self.total, self.cause = job_id, done, total, cause
        how = (
            f"resume with: compound table --resume {job_id}" if job_id else "run it with a job id to make it resumable"
        )
        super().__init__(f"job {job_id or '(unnamed)'} stopped after {done}/{total} rows: {cause}\n{how}")


class JobStore(SQLiteStore):
    KIND = "job store"
    VERSION = 1
    SCHEMA = """
    CREATE TABLE jobs (id TEXT PRIMARY KEY, spec TEXT NOT NULL, fingerprint TEXT NOT NULL, status TEXT NOT NULL,
                       total INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
    CREATE TABLE results (job_id TEXT NOT NULL, row_key TEXT NOT NULL, output TEXT NOT NULL, usage TEXT NOT NULL,
                          PRIMARY KEY (job_id, row_key));
    CREATE TABLE row_cache (key TEXT PRIMARY KEY, output TEXT NOT NULL, usage TEXT NOT NULL)
    """

    def create(self, job_id: str, spec: dict[str, Any], fingerprint: str, total: int) -> None:
        now = time.time()
        self.connect().execute(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?,?)",
            (job_id, json.dumps(spec), fingerprint, "running", total, now, now),
        )

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = (
            self.connect().execute("SELECT spec, fingerprint, status, total FROM jobs WHERE id=?", (job_id,)).fetchone()
        )
        if row is None:
            return None
        return {"id": job_id, "spec": json.loads(row[0]), "fingerprint": row[1], "status": row[2], "total": row[3]}

    def set_status(self, job_id: str, status: str) -> None:
        self.connect().execute("UPDATE jobs SET status=?, updated=? WHERE id=?", (status, time.time(), job_id))

    def done(self, job_id: str) -> dict[str, dict[str, Any]]:
        rows = self.connect().execute("SELECT row_key, output FROM results WHERE job_id=?", (job_id,))
        return {k: json.loads(o) for k, o in rows}

    def commit(self, job_id: str, items: list[tuple[str, str, str]]) -> None:
        """Commit finished rows ``(row_key, output_json, usage_json)`` in one transaction, synchronously."""
        conn = self.connect()
        with conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO results VALUES (?,?,?,?)", [(job_id, *item) for item in items])

    def cached(self, keys: list[str]) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        conn = self.read()
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            q = f"SELECT key, output, usage FROM row_cache WHERE key IN ({','.join('?' * len(chunk))})"
            for k, o, u in conn.execute(q, chunk):
                out[k] = (o, u)
        return out

    def remember(self, items: list[tuple[str, str, str]]) -> None:
        for item in items:
            self.writer.put("INSERT OR REPLACE INTO row_cache VALUES (?,?,?)", item)

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.connect().execute(
            "SELECT j.id, j.status, j.total, (SELECT COUNT(*) FROM results r WHERE r.job_id=j.id), j.updated, j.spec "
            "FROM jobs j ORDER BY j.updated DESC LIMIT ?",
            (limit,),
        )
        return [
            {"id": r[0], "status": r[1], "total": r[2], "done": r[3], "updated": r[4], "spec": json.loads(r[5])}
            for r in rows
        ]


def job_store() -> JobStore:
    return JobStore.at(get_settings().home / "tables.sqlite")


@dataclass
class TableRun:
    df: Any
    job_id: str | None
    rows: int
    computed: int  # distinct inputs sent to the program this time
    from_cache: int
    from_checkpoint: int
    usage: UsageTracker
    failed: dict[Any, str] | None = None  # row index -> why its reply never parsed (those cells stay empty)
    setup: dict[str, Any] | None = None  # what building the op learned and spent once (``--auto``)


def _row_key(index: Any) -> str:
    return str(index)


def _value_dict(value: Any, columns: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return {c: value.get(c) for c in columns}
    return {c: getattr(value, c, None) for c in columns}


async def aprocess_table(
    op: TableOp,
    df: Any,
    *,
    job_id: str | None = None,
    spec: dict[str, Any] | None = None,
    progress: bool = False,
    concurrency: int | None = None,
) -> TableRun:
    store = job_store()
    fingerprint = op.fingerprint
    total = len(op.tasks)
    outputs: dict[str, dict[str, Any]] = {}
    from_checkpoint = 0
    if job_id is not None:
        job = store.get(job_id)
        if job is None:
            store.create(job_id, spec or op.spec, fingerprint, total)
        elif job["fingerprint"] != fingerprint or job["total"] != total:
            raise CompoundError(
                f"job {job_id} was started with another program or input ({job['total']} rows); "
                "start a new job instead of resuming this one"
            )
        else:
            store.set_status(job_id, "running")
            outputs = store.done(job_id)
            from_checkpoint = len(outputs)
    with span("step", f"table.{op.name}", rows=total, job_id=job_id) as s:
        tracker = s.usage
        todo: dict[str, list[str]] = {}  # input key -> row keys waiting for it
        texts: dict[str, str] = {}
        for index, text in op.tasks:
            rk = _row_key(index)
            if rk in outputs:
                continue
            key = hashlib.sha256(f"{fingerprint}\x00{text}".encode()).hexdigest()
            todo.setdefault(key, []).append(rk)
            texts[key] = text
        use_cache = get_settings().cache
        hits = store.cached(list(todo)) if use_cache else {}
        bar = _Progress(total, from_checkpoint, tracker) if progress else None
        finished: list[tuple[str, str, str]] = []
        saved = Usage()
        decoded: dict[str, dict[str, Any]] = {}  # many rows share an output (a label): decode each text once
        for key, (out_json, usage_json) in hits.items():
            saved.add(Usage.from_dict(json.loads(usage_json)))
            value = decoded.get(out_json)
            if value is None:
                value = decoded[out_json] = json.loads(out_json)
            for rk in todo.pop(key):
                outputs[rk] = value
                finished.append((rk, out_json, usage_json))
        for t in active_trackers():
            t.record(saved, cached=True)
        if job_id is not None and finished:
            store.commit(job_id, finished)
        if bar:
            bar.advance(len(finished))
        computed = await _compute(op, todo, texts, outputs, store, job_id, bar, concurrency, use_cache)
        if job_id is not None:
            store.set_status(job_id, "done")
        if bar:
            bar.close()
        s.attrs.update(computed=computed, from_cache=len(finished), from_checkpoint=from_checkpoint)
    ordered = {index: outputs[_row_key(index)] for index, _ in op.tasks}
    failed = {index: out[ERROR_KEY] for index, out in ordered.items() if ERROR_KEY in out}
    return TableRun(op.apply(df, ordered), job_id, total, computed, len(finished), from_checkpoint, tracker, failed)


async def _compute(op, todo, texts, outputs, store, job_id, bar, concurrency, use_cache) -> int:
    sem = asyncio.Semaphore(concurrency or get_settings().max_concurrency)

    async def one(key: str) -> None:
        failed = None
        async with sem:
            with track_usage() as row_usage:
                try:
                    value = await op.program.acall(row=texts[key])
                except OutputParseError as e:  # this row's reply never parsed: the cells stay empty, the job goes on
                    value, failed = {}, {ERROR_KEY: f"{e.errors} (raw reply: {e.raw_text[:200]!r})"}
        out_json = json.dumps({**_value_dict(value, op.output_columns), **(failed or {})}, default=str)
        usage_json = json.dumps(row_usage.physical.to_dict())
        rows = todo[key]
        if job_id is not None:
            store.commit(job_id, [(rk, out_json, usage_json) for rk in rows])
        if use_cache and failed is None:  # a failure is not cached: a later run (another model, say) tries again
            store.remember([(key, out_json, usage_json)])
        decoded = json.loads(out_json)
        for rk in rows:
            outputs[rk] = decoded
        if bar:
            bar.advance(len(rows))

    tasks = [asyncio.ensure_future(one(k)) for k in list(todo)]
    try:
        await asyncio.gather(*tasks)
    except BaseException as e:
        if not isinstance(e, BudgetExceededError):
            for t in tasks:
                t.cancel()
        # after a budget stop the other rows are not cancelled: those in flight were paid for and are committed,
        # the rest stop on the budget themselves
        await asyncio.gather(*tasks, return_exceptions=True)
        if job_id is not None:
            store.set_status(job_id, "stopped")
        if bar:
            bar.close()
        if isinstance(e, BudgetExceededError):
            raise JobStopped(job_id, len(outputs), len(op.tasks), e) from e
        raise
    return len(tasks)


class _Progress:
    """A rich progress bar: rows done, rate, ETA, and cost and energy so far."""

    def __init__(self, total: int, done: int, tracker: UsageTracker) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.tracker = tracker
        self.progress = Progress(
            TextColumn("[bold]rows"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeRemainingColumn(),
            TextColumn("${task.fields[cost]:.4f}  {task.fields[energy]:.0f} J"),
            transient=False,
        )
        self.start = time.monotonic()
        self.done0 = done
        self.task = self.progress.add_task("rows", total=total, completed=done, rate="-", cost=0.0, energy=0.0)
        self.progress.start()

    def advance(self, n: int) -> None:
        t = self.progress.tasks[0]
        done = t.completed + n - self.done0
        rate = done / max(1e-9, time.monotonic() - self.start)
        u = self.tracker.physical
        self.progress.update(self.task, advance=n, rate=f"{rate:.1f}", cost=u.cost_usd, energy=u.energy_j)

    def close(self) -> None:
        self.progress.stop()


def process_table(op: TableOp, df: Any, **kwargs: Any) -> TableRun:
    """Run a table operator over ``df`` (sync); ``aprocess_table`` documents the options."""
    from compound.core.concurrency import run_sync

    return run_sync(aprocess_table(op, df, **kwargs))


#: the old names, kept for one release
run_table, arun_table = process_table, aprocess_table


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
