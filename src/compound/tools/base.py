"""A tool is a typed Python function: its signature becomes a pydantic model that checks arguments.

Every call has a time limit: the tool's own ``timeout_s``, else the caller's default (``ToolAgent``'s
``tool_timeout_s``), else ``DEFAULT_TIMEOUT_S``; and never past the wall-time deadline of a ``budget``.

- An async tool is cancelled at the limit.
- A sync tool that declares itself ``blocking=True`` runs in a process of its own (spawned, so no lock or
  thread of the caller is copied into it), which is killed at the limit. Its arguments and result travel as
  JSON (never pickle): it must be a module-level function, and its result is what ``json.dumps(...,
  default=str)`` makes of it.
- Any other sync tool runs on a daemon thread of its own, which Python cannot stop: the caller stops
  waiting at the limit while the thread finishes in the background (it keeps no one waiting, not even the
  process's exit). Declare a tool ``blocking`` when it may hang.

A tool that runs out of time raises ``ToolTimeout`` (a ``TimeoutError``) whose message the model is shown;
one stopped by the budget's deadline raises ``BudgetExceededError``. A result whose JSON is longer than
``max_result_chars`` reaches the model cut to that length, with a note saying so.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import json
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel, ValidationError, create_model

from compound.core.errors import CompoundError, InputError, InputTypeError
from compound.core.validate import check_number

#: the time limit of a tool call when neither the tool nor its caller sets one
DEFAULT_TIMEOUT_S = 30.0


class ToolArgumentError(InputError):
    """The arguments do not fit the tool's signature."""


async def _on_own_thread(fn: Callable[..., Any], args: dict[str, Any], name: str) -> Any:
    """Run a sync function on a daemon thread of its own, carrying the context. Unlike the loop's
    executor, a thread that overruns its timeout keeps neither the caller nor the loop's shutdown waiting."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    ctx = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(value)

    def target() -> None:
        try:
            value, error = ctx.run(fn, **args), None
        except BaseException as e:  # handed to the awaiting coroutine
            value, error = None, e
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the caller's loop has closed: nobody is waiting any more
            pass

    threading.Thread(target=target, name=name, daemon=True).start()
    return await done


class ToolFailed(CompoundError):
    """A tool raised SystemExit, KeyboardInterrupt or another BaseException: reported, never an exit."""


def contained(error: BaseException) -> BaseException:
    """Return what a callback, constraint or tool raised, to be reported as data; re-raise only the
    cancellation of the caller itself. SystemExit, KeyboardInterrupt or any other BaseException raised
    *by the callee* is its failure, never a reason to end the host process."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        raise error
    return error


class ToolTimeout(CompoundError, TimeoutError):
    """A tool ran past its time limit and was stopped (or, for a sync tool on a thread, abandoned)."""


def _reference(fn: Callable[..., Any], name: str) -> str:
    """``module:qualname`` of a module-level function, which a spawned process can import (checked again
    when the tool first runs: at decoration time the module is still being executed)."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    main = importlib.import_module("__main__")
    if not module or "<" in qualname or (module == "__main__" and not getattr(main, "__file__", None)):
        raise InputTypeError(
            f"tool {name!r} is blocking, so it runs in a process of its own, which imports it by name: make it a "
            "function defined at the top level of an importable module (not a lambda or a local function)"
        )
    return f"{module}:{qualname}"


def _resolve(reference: str) -> Any:
    module, qualname = reference.split(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found.fn if isinstance(found, Tool) else found


def _serve(reference: str, conn: Any) -> None:
    """The body of a blocking tool's process: import the function, say it is ready, then answer each
    call (JSON arguments in, JSON result or error out) until the pipe closes."""
    try:
        fn = _resolve(reference)
    except BaseException as e:
        conn.send_bytes(json.dumps({"error": f"cannot import {reference}: {type(e).__name__}: {e}"}).encode())
        return
    conn.send_bytes(b'{"ready": true}')
    while True:
        try:
            arguments = json.loads(conn.recv_bytes())
        except EOFError:
            return
        try:
            reply = {"result": json.loads(json.dumps(fn(**arguments), default=str))}
        except BaseException as e:  # reported to the caller as the tool's failure
            reply = {"error": f"{type(e).__name__}: {e}"}
        conn.send_bytes(json.dumps(reply).encode())


class _Worker:
    """A spawned process that runs one blocking tool, call after call; killed when a call overruns."""

    def __init__(self, reference: str, name: str) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no lock or thread of this process is copied into it
        self.name = name
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(reference, child), name=f"compound-tool-{name}", daemon=True)
        self.process.start()
        child.close()

    async def _receive(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future = loop.create_future()
        fd = self.conn.fileno()
        loop.add_reader(fd, lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        try:
            return json.loads(self.conn.recv_bytes())
        except EOFError:
            self.process.join(1.0)
            raise ToolFailed(
                f"tool {self.name!r}: its process ended (exit code {self.process.exitcode}) without a result"
            ) from None

    async def ready(self) -> None:
        reply = await self._receive()
        if "error" in reply:
            raise ToolFailed(reply["error"])

    async def call(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.conn.send_bytes(json.dumps(arguments, default=str).encode())
        return await self._receive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        if not self.conn.closed:
            self.conn.close()


class Tool:
    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        args_model: type[BaseModel] | None = None,
        *,
        timeout_s: float | None = None,
        max_result_chars: int = 20_000,
        blocking: bool = False,
    ) -> None:
        if timeout_s is not None:
            check_number("tool timeout_s", timeout_s, above=0)
        check_number("tool max_result_chars", max_result_chars, at_least=1, integer=True)
        if isinstance(max_result_chars, float):
            raise InputError(f"tool max_result_chars must be a whole number >= 1 (got {max_result_chars!r})")
        #: the tool's own time limit; None: the caller's default, else DEFAULT_TIMEOUT_S
        self.timeout_s = None if timeout_s is None else float(timeout_s)
        self.max_result_chars = max_result_chars
        self.fn = fn
        self.name = name or fn.__name__
        self.description = (description or inspect.getdoc(fn) or self.name).strip()
        self.args_model = args_model or _args_model(fn, self.name)
        self.is_async = inspect.iscoroutinefunction(fn)
        if blocking and self.is_async:
            raise InputTypeError(f"tool {self.name!r} is async; blocking=True is for sync functions")
        self.blocking = bool(blocking)
        self._reference = _reference(fn, self.name) if blocking else None
        self._idle: list[_Worker] = []  # started processes of a blocking tool, waiting for a call

    @property
    def schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()

    def check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.args_model.model_validate(arguments).model_dump()
        except ValidationError as e:
            raise ToolArgumentError(
                f"bad arguments for tool {self.name!r}: "
                + "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
            ) from None

    def _check_importable(self) -> None:
        try:
            same = _resolve(cast(str, self._reference)) is self.fn
        except (ImportError, AttributeError, ValueError):
            same = False
        if not same:
            raise ToolArgumentError(
                f"tool {self.name!r} is blocking, but {self._reference} does not import as this function; define it "
                "at the top level of an importable module under its own name"
            )

    def limit_s(self, default_s: float | None = None) -> float:
        """The time limit of a call: the tool's own, else ``default_s``, else ``DEFAULT_TIMEOUT_S``."""
        if self.timeout_s is not None:
            return self.timeout_s
        return DEFAULT_TIMEOUT_S if default_s is None else default_s

    async def acall(self, arguments: dict[str, Any], *, default_timeout_s: float | None = None) -> Any:
        """Check the arguments and run the tool, stopped at its time limit (``ToolTimeout``) or at a budget's
        wall-time deadline (``BudgetExceededError``), whichever comes first."""
        from compound.core.budget import wall_deadline, wall_exceeded, within_wall

        args = self.check(arguments)
        limit = self.limit_s(default_timeout_s)
        worker = await within_wall(self._worker()) if self._reference is not None else None
        nearest = wall_deadline()  # after a process start, which the tool's own limit does not count
        wait = limit if nearest is None else min(limit, nearest[0])
        started = time.monotonic()
        try:
            return await asyncio.wait_for(self._run(args, worker), wait)
        except BaseException as e:
            if worker is not None and worker not in self._idle:
                worker.kill()  # stopped before or during its call: never reused
            if not isinstance(e, TimeoutError):
                raise
            if time.monotonic() - started < wait * 0.99:
                raise  # the tool itself raised TimeoutError: its failure, reported as such
            if nearest is not None and nearest[0] <= limit:
                raise wall_exceeded(nearest[1]) from None
            how = (
                "abandoned (a sync tool on a thread cannot be stopped)"
                if not self.is_async and not self.blocking
                else "stopped"
            )
            raise ToolTimeout(f"tool {self.name!r} took longer than {limit:g} s; it was {how}") from None

    async def _worker(self) -> _Worker:
        """An idle process of this blocking tool, or a new one once it has imported the tool."""
        if self._idle:
            return self._idle.pop()
        self._check_importable()
        worker = _Worker(cast(str, self._reference), self.name)
        try:
            await worker.ready()
        except BaseException:
            worker.kill()
            raise
        return worker

    async def _in_process(self, worker: _Worker, args: dict[str, Any]) -> Any:
        try:
            reply = await worker.call(args)
        except BaseException:  # cancelled at the time limit, or the process died: it is not reused
            worker.kill()
            raise
        self._idle.append(worker)
        if "error" in reply:
            raise ToolFailed(reply["error"])
        return reply["result"]

    async def _run(self, args: dict[str, Any], worker: _Worker | None = None) -> Any:
        try:
            if self.is_async:
                return await self.fn(**args)
            if worker is not None:
                return await self._in_process(worker, args)
            return await _on_own_thread(self.fn, args, f"compound-tool-{self.name}")
        except Exception:
            raise
        except BaseException as e:  # SystemExit, KeyboardInterrupt... raised by the tool: a failure, not an exit
            raise ToolFailed(f"{type(contained(e)).__name__}: {e}") from e

    def capped(self, result: Any) -> Any:
        """The result as the model will see it: unchanged, or cut to ``max_result_chars`` of its JSON."""
        text = json.dumps(result, default=str)
        if len(text) <= self.max_result_chars:
            return result
        return {
            "result_truncated": text[: self.max_result_chars],
            "note": f"the result was {len(text)} characters; only the first {self.max_result_chars} are shown",
        }

    def __call__(self, **arguments: Any) -> Any:
        from compound.core.concurrency import run_sync

        return run_sync(self.acall(arguments))

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def _args_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise InputTypeError(
                f"tool {name!r}: *args and **kwargs cannot be described to a model; name every parameter"
            )
        annotation = p.annotation if p.annotation is not inspect.Parameter.empty else Any
        fields[p.name] = (annotation, ... if p.default is inspect.Parameter.empty else p.default)
    return create_model(f"{name}_args", **fields)


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    max_result_chars: int = 20_000,
    blocking: bool = False,
) -> Any:
    """``@tool`` turns a typed function into a ``Tool`` (``@tool(blocking=True)``: one that may hang, run in
    a process that is killed at its time limit)."""
    options = {"timeout_s": timeout_s, "max_result_chars": max_result_chars, "blocking": blocking}
    if fn is None:
        return lambda f: Tool(f, name, description, **options)
    return Tool(fn, name, description, **options)
