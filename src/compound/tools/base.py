"""A tool is a typed Python function: its signature becomes a pydantic model that checks arguments."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from compound.core.errors import InputError, InputTypeError


class ToolArgumentError(InputError):
    """The arguments do not fit the tool's signature."""


class Tool:
    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        args_model: type[BaseModel] | None = None,
    ) -> None:
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
        args = self.check(arguments)
        if self.is_async:
            return await self.fn(**args)
        ctx = contextvars.copy_context()
        return await asyncio.to_thread(ctx.run, self.fn, **args)

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


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None) -> Any:
    """``@tool`` turns a typed function into a ``Tool``."""
    if fn is None:
        return lambda f: Tool(f, name, description)
    return Tool(fn, name, description)
