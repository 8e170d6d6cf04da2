"""A tool is a typed Python function: its signature becomes a pydantic model that checks arguments.

Every call has a time limit (``timeout_s``): an async tool is cancelled at the limit; a sync tool runs on
a daemon thread of its own, which Python cannot stop, so the caller stops waiting and gets a
``TimeoutError`` while the thread finishes in the background (it keeps no one waiting, not even the
process's exit). A result whose JSON is longer than ``max_result_chars`` reaches
the model cut to that length, with a note saying so.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from compound.core.errors import CompoundError, InputError, InputTypeError
from compound.core.validate import check_number


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


class Tool:
    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        args_model: type[BaseModel] | None = None,
        *,
        timeout_s: float = 30.0,
        max_result_chars: int = 20_000,
    ) -> None:
        check_number("tool timeout_s", timeout_s, above=0)
        check_number("tool max_result_chars", max_result_chars, at_least=1, integer=True)
        if isinstance(max_result_chars, float):
            raise InputError(f"tool max_result_chars must be a whole number >= 1 (got {max_result_chars!r})")
        self.timeout_s = float(timeout_s)
        self.max_result_chars = max_result_chars
        self.fn = fn
        self.name = name or fn.__name__
        self.description = (description or inspect.getdoc(fn) or self.name).strip()
        self.args_model = args_model or _args_model(fn, self.name)
        self.is_async = inspect.iscoroutinefunction(fn)

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

    async def acall(self, arguments: dict[str, Any]) -> Any:
        """Check the arguments and run the tool; ``TimeoutError`` after ``timeout_s``."""
        args = self.check(arguments)
        return await asyncio.wait_for(self._run(args), self.timeout_s)

    async def _run(self, args: dict[str, Any]) -> Any:
        try:
            if self.is_async:
                return await self.fn(**args)
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
    timeout_s: float = 30.0,
    max_result_chars: int = 20_000,
) -> Any:
    """``@tool`` turns a typed function into a ``Tool``."""
    if fn is None:
        return lambda f: Tool(f, name, description, timeout_s=timeout_s, max_result_chars=max_result_chars)
    return Tool(fn, name, description, timeout_s=timeout_s, max_result_chars=max_result_chars)
