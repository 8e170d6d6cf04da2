"""Durable batch execution of table operators.

``process_table`` computes each distinct row input once (identical prompts share one call), serves rows
already computed from the row cache, and shows progress (rows, rate, ETA, cost and energy so far).

With a job id:

- Every finished row input is committed to SQLite as soon as it is computed, so a job stopped by a crash, a
  ``kill -9``, an error or a budget resumes where it stopped. A stop lets the calls in flight finish (they are
  paid for) and commits them; it starts no new call.
- Every row gets the output of its own input: results are placed by the row's position in the frame, never
  by its index label (labels repeat after ``pd.concat``, and may be tuples or NaN).
- Row inputs are identified by their content (the program's fingerprint and the text the row is shown as),
  never by their position: a resume over an input that was edited or re-sorted reuses exactly the results whose
  rows are still there, computes the rest, and reports how many results no longer match (``TableRun.stale``).
  A resume with another program (another fingerprint) is refused.
- One process at a time holds the job (``joblock``); a second one is refused with a message naming the first.
- Where rows are computed is the runner's business (``LocalRunner`` here, ``RayRunner`` on a cluster);
  everything above holds for both, and a job started on one may be resumed on the other.
- ``finish=False`` leaves the job ``computed`` rather than ``done``: the caller marks it done once its
  output is written (``mark_done``), so ``done`` always means the output exists.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from compound.core.errors import BudgetExceededError, CompoundError, ConfigurationError
from compound.core.progress import Progress
from compound.core.settings import get_settings
from compound.core.usage import Usage, UsageTracker, active_trackers
from compound.store.sqlite import SQLiteStore
from compound.store.traces import span
from compound.tables.joblock import check_job_id, job_lock
from compound.tables.multirow.staged import StagedOp
from compound.tables.operators import TableOp
from compound.tables.runner import ERROR_KEY, FinishedRow, LocalRunner, Runner


class JobStopped(CompoundError):
    """A job stopped early (a budget, say); its finished rows are saved and it can be resumed."""

    def __init__(self, job_id: str | None, done: int, total: int, cause: BaseException):
        self.job_id, self.done, self.total, self.cause = job_id, done, total, cause
        how = (
            f"resume with: compound table --resume {job_id}" if job_id else "run it with a job id to make it resumable"
        )
        super().__init__(f"job {job_id or '(unnamed)'} stopped after {done}/{total} row inputs: {cause}\n{how}")


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
        spec = self.decode(row[0], "jobs", {"id": job_id}, "spec")
        return {"id": job_id, "spec": spec, "fingerprint": row[1], "status": row[2], "total": row[3]}

    def set_fingerprint(self, job_id: str, fingerprint: str) -> None:
        self.connect().execute("UPDATE jobs SET fingerprint=? WHERE id=?", (fingerprint, job_id))

    def set_spec(self, job_id: str, spec: dict[str, Any]) -> None:
        self.connect().execute("UPDATE jobs SET spec=?, updated=? WHERE id=?", (json.dumps(spec), time.time(), job_id))

    def set_status(self, job_id: str, status: str, total: int | None = None) -> None:
        self.connect().execute(
            "UPDATE jobs SET status=?, total=COALESCE(?, total), updated=? WHERE id=?",
            (status, total, time.time(), job_id),
        )

    def done(self, job_id: str) -> dict[str, dict[str, Any]]:
        rows = self.connect().execute("SELECT row_key, output FROM results WHERE job_id=?", (job_id,))
        return {k: self.decode(o, "results", {"job_id": job_id, "row_key": k}, "output") for k, o in rows}

    def commit(self, job_id: str, items: list[tuple[str, str, str]]) -> None:
        """Commit finished rows ``(row_key, output_json, usage_json)`` in one transaction, synchronously."""
        conn = self.connect()
        with conn:
            conn.execute("BEGIN")
            conn.executemany("INSERT OR REPLACE INTO results VALUES (?,?,?,?)", [(job_id, *item) for item in items])

    def cached(self, keys: list[str]) -> tuple[dict[str, tuple[str, str, dict[str, Any]]], Usage]:
        """The row cache's entries for ``keys`` as stored, with the output decoded: (output JSON, usage JSON,
        output); and the sum of their usages. Rows sharing an output (a label) share its decoded dict. An
        entry that does not decode (an output or usage that is not a JSON object, a usage whose values do
        not add up) is skipped (see ``skip_row``)."""
        out: dict[str, tuple[str, str, dict[str, Any]]] = {}
        usages: list[tuple[str, dict[str, Any]]] = []
        damaged: list[tuple[str, str]] = []
        outputs: dict[str, dict[str, Any]] = {}  # decode each output text once
        conn = self.read()
        for i in range(0, len(keys), 900):
            chunk = keys[i : i + 900]
            q = f"SELECT key, output, usage FROM row_cache WHERE key IN ({','.join('?' * len(chunk))})"
            for k, o, u in conn.execute(q, chunk):
                try:  # _json_object, not self.decode: this loop serves every cached row of a re-run
                    value = outputs.get(o)
                    if value is None:
                        value = outputs[o] = _json_object(o)
                    usages.append((k, _json_object(u)))
                except (ValueError, TypeError, RecursionError) as e:
                    damaged.append((k, f"{type(e).__name__}: {e}"))
                    continue
                out[k] = (o, u, value)
        try:
            total = Usage.sum_dicts([u for _, u in usages])
        except TypeError:  # some usage holds a value that does not add: find it, row by row
            total = Usage()
            for k, u in usages:
                try:
                    total = total + Usage.from_dict(u)  # (not add: a value that fails leaves total as it was)
                except TypeError as e:
                    damaged.append((k, f"{type(e).__name__}: {e}"))
                    del out[k]
        for k, why in damaged:
            self.skip_row("row_cache", {"key": k}, self.bad_row("row_cache", {"key": k}, "output or usage", why))
        return out, total

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
            {
                "id": r[0],
                "status": r[1],
                "total": r[2],
                "done": r[3],
                "updated": r[4],
                "spec": self.decode(r[5], "jobs", {"id": r[0]}, "spec"),
            }
            for r in rows
        ]

    def usages(self, job_id: str) -> list[dict[str, Any]]:
        """The usage of each finished row of a job."""
        rows = self.read().execute("SELECT row_key, usage FROM results WHERE job_id=?", (job_id,)).fetchall()
        return [self.decode(u, "results", {"job_id": job_id, "row_key": k}, "usage") for k, u in rows]


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
    failed: dict[int, str] | None = None  # row position -> why its reply never parsed (those cells stay empty)
    outputs: dict[int, dict[str, Any]] | None = None  # row position (0: the first row) -> the values written
    stale: int = 0  # results of an earlier run of the job that match no row of this input
    notes: list[str] = field(default_factory=list)  # what a caller should tell the user (an input that changed)
    setup: dict[str, Any] | None = None  # what building the op learned and spent once (``--auto``)
    report: dict[str, Any] | None = None  # what an operator over several rows did (``StagedOp.report``)


#: ``json.loads`` without its two whitespace scans (stored JSON has none around it)
_raw_decode = json.JSONDecoder().raw_decode


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object ``text`` holds; ``ValueError`` (or ``TypeError`` for a text that is no string) if it
    holds anything else, or is not JSON."""
    try:
        value, end = _raw_decode(text)
    except ValueError:
        value, end = json.loads(text), len(text)  # JSON with whitespace around it decodes; damage raises
    if end != len(text):
        value = json.loads(text)  # whitespace after it, or more data (raises)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON object was stored, it holds {type(value).__name__}")
    return value


def _input_key(fingerprint: str, text: str) -> str:
    """A row's identity: what the program is and what the row shows it, never the row's position."""
    return hashlib.sha256(f"{fingerprint}\x00{text}".encode()).hexdigest()


def mark_done(job_id: str) -> None:
    job_store().set_status(job_id, "done")


async def aprocess_table(
    op: TableOp | StagedOp,
    df: Any,
    *,
    job_id: str | None = None,
    spec: dict[str, Any] | None = None,
    progress: bool = False,
    concurrency: int | None = None,
    finish: bool = True,
    runner: Runner | None = None,
) -> TableRun:
    """Run ``op`` over ``df``: here (``LocalRunner(concurrency)``, the default) or on the ``runner``
    given (a ``RayRunner``), with the same job, cache, budgets and usage either way."""
    runner = runner or LocalRunner(concurrency)
    with job_lock(check_job_id(job_id)) if job_id is not None else nullcontext():
        try:
            if isinstance(op, StagedOp):
                return await _staged(op, job_id, spec, progress, runner, finish)
            return await _process(op, df, job_id, spec, progress, runner, finish)
        finally:
            runner.close()


async def _staged(op: StagedOp, job_id, spec, progress, runner, finish) -> TableRun:
    """An operator over several rows: each stage of its plan is a ``TableOp`` run by ``_process`` under the
    same job (one fingerprint), so checkpoints, the row cache, budgets and usage are the one-row operators'.
    The bar counts the stages' inputs against the plan's bound."""
    runs: list[TableRun] = []
    bar = Progress(progress, op.name, op.bound, unit="calls", formats={"cost": "${:.4f}"})
    with span("step", f"table.{op.name}", rows=op.rows, bound=op.bound, job_id=job_id) as s:
        tracker = s.usage
        assert tracker is not None

        async def run(tasks: list[tuple[Any, str]]) -> dict[Any, dict[str, Any]]:
            if not tasks:
                return {}
            done = await _process(op.stage(tasks), None, job_id, spec or op.spec, False, runner, False)
            runs.append(done)
            bar.update(advance=done.rows, cost=tracker.physical.cost_usd)
            return done.outputs or {}

        try:
            df = await op.plan(run)
        finally:
            bar.stop()
        if job_id is not None:
            job_store().set_status(job_id, "done" if finish else "computed")
        s.attrs.update(op.report)
    return TableRun(
        df,
        job_id,
        op.rows,
        sum(r.computed for r in runs),
        sum(r.from_cache for r in runs),
        sum(r.from_checkpoint for r in runs),
        tracker,
        {key: why for r in runs for key, why in (r.failed or {}).items()},
        None,
        report=op.report,
    )


async def _process(op, df, job_id, spec, progress, runner, finish) -> TableRun:
    runner.prepare(op)  # before the job opens: a cluster that cannot compute rows is an error now
    store = job_store()
    fingerprint = op.fingerprint
    keys = [_input_key(fingerprint, text) for _, text in op.tasks]
    texts = {key: text for key, (_, text) in zip(keys, op.tasks, strict=True)}
    total = len(texts)
    outputs: dict[str, dict[str, Any]] = {}
    from_checkpoint = stale = 0
    if job_id is not None:
        job = store.get(job_id)
        if job is None:
            store.create(job_id, spec or op.spec, fingerprint, total)
        elif job["fingerprint"] not in ("", fingerprint):  # "": created, but it stopped before any row
            raise ConfigurationError(
                f"job {job_id} was started with another program (its operation, model or settings differ); "
                "start a new job instead of resuming this one"
            )
        else:
            if not job["fingerprint"]:
                store.set_fingerprint(job_id, fingerprint)
            saved = store.done(job_id)
            outputs = {k: v for k, v in saved.items() if k in texts}
            from_checkpoint = sum(1 for key in keys if key in outputs)  # rows
            stale = len(saved) - len(outputs)
            store.set_status(job_id, "running", total)
    with span("step", f"table.{op.name}", rows=len(op.tasks), job_id=job_id) as s:
        tracker = s.usage
        assert tracker is not None  # span() always gives its block a tracker
        todo: dict[str, int] = {}  # input key -> how many rows wait for it
        for key in keys:
            if key not in outputs:
                todo[key] = todo.get(key, 0) + 1
        use_cache = get_settings().cache
        hits, saved_usage = store.cached(list(todo)) if use_cache else ({}, Usage())
        bar = Progress(
            progress,
            "rows",
            len(keys),
            len(keys) - sum(todo.values()),
            unit="rows",
            formats={"cost": "${:.4f}", "energy": "{:.0f} J"},
        )

        def advance(rows: int) -> None:  # the bar, with the cost and energy spent so far
            bar.update(advance=rows, cost=tracker.physical.cost_usd, energy=tracker.physical.energy_j)

        from_cache = 0  # rows
        for key, (_, _, value) in hits.items():
            outputs[key] = value
            from_cache += todo.pop(key)
        for t in active_trackers():
            t.record(saved_usage, cached=True)
        if job_id is not None and hits:
            store.commit(job_id, [(key, out_json, usage_json) for key, (out_json, usage_json, _) in hits.items()])
        advance(from_cache)

        decoded: dict[str, dict[str, Any]] = {}  # output JSON -> its value: rows sharing a label share it

        def done(rows: list[FinishedRow]) -> None:
            """Commit finished rows (one transaction), cache those that parsed, and show them."""
            if job_id is not None:
                store.commit(job_id, [(r.key, r.output, r.usage) for r in rows])
            if use_cache:  # a failure is not cached: a later run (another model, say) tries again
                store.remember([(r.key, r.output, r.usage) for r in rows if not r.failed])
            for r in rows:
                value = decoded.get(r.output)
                if value is None:
                    value = decoded[r.output] = json.loads(r.output)
                outputs[r.key] = value
                advance(todo[r.key])

        failures: list[BaseException] = []
        try:
            await runner.compute(op, {k: texts[k] for k in todo}, done, failures)
        except BaseException:  # interrupted or cancelled: what was committed stays committed
            _stopped(store, job_id)
            raise
        finally:
            bar.stop()
        if failures:
            _stopped(store, job_id)
            cause = next((e for e in failures if isinstance(e, BudgetExceededError)), failures[0])
            if job_id is None and not isinstance(cause, BudgetExceededError):
                raise cause
            raise JobStopped(job_id, len(outputs), len(texts), cause) from cause
        computed = len(todo)
        if job_id is not None:
            store.set_status(job_id, "done" if finish else "computed")
        s.attrs.update(computed=computed, from_cache=from_cache, from_checkpoint=from_checkpoint, stale=stale)
    ordered = {position: outputs[key] for (position, _), key in zip(op.tasks, keys, strict=True)}
    failed = {position: out[ERROR_KEY] for position, out in ordered.items() if ERROR_KEY in out}
    return TableRun(
        op.apply(df, ordered),
        job_id,
        len(op.tasks),
        computed,
        from_cache,
        from_checkpoint,
        tracker,
        failed,
        ordered,
        stale,
    )


def _stopped(store: JobStore, job_id: str | None) -> None:
    if job_id is not None:
        store.set_status(job_id, "stopped")


def process_table(op: TableOp | StagedOp, df: Any, **kwargs: Any) -> TableRun:
    """Run a table operator over ``df`` (sync); ``aprocess_table`` documents the options."""
    from compound.core.concurrency import run_sync

    return run_sync(aprocess_table(op, df, **kwargs))


def __getattr__(name: str) -> Any:
    old = {"run_table": "process_table", "arun_table": "aprocess_table"}
    if name in old:
        from compound._deprecated import warn_renamed

        warn_renamed(f"compound.tables.jobs.{name}", f"compound.{old[name]}")
        return globals()[old[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
