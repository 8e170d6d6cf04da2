"""What a server serves: saved programs (by their JSON file) and models (by name).

Guarantees:
- A saved program is rebuilt from its file alone: the file names its class (``"class": "module:Qual"``,
  or a script path), the class is built with no arguments and its parameters are loaded from the file.
  ``write_email`` names the built-in email program.
- A program is servable when it has a ``signature`` (a ``Predict`` has one; a composite program sets
  ``self.signature``): its pydantic input and output models become the request and response schemas.
- Chat messages map onto the inputs in one documented way (``chat_inputs``); anything else is a
  ``RequestError`` that names the fields the program takes.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from compound.core.errors import ConfigurationError, InputError
from compound.program.module import Module
from compound.program.predict import Signature

BUILTIN = {"write_email": "compound.serve.write_email:WriteEmail"}


class RequestError(InputError):
    """A request the server refuses: ``status`` (4xx), a message that names the fix, and a machine code."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.headers = headers or {}
        super().__init__(message)


@dataclass
class Served:
    """One served program."""

    name: str
    program: Module
    signature: Signature

    @property
    def inputs(self) -> type[BaseModel]:
        return self.signature.inputs

    @property
    def outputs(self) -> type[BaseModel]:
        return self.signature.outputs

    def check_inputs(self, data: Any) -> dict[str, Any]:
        try:
            validated = self.inputs.model_validate(data)
        except ValidationError as e:
            raise RequestError(
                422,
                f"inputs for program {self.name!r} do not fit its schema: {_errors(e)}. "
                f"It takes: {json.dumps(self.inputs.model_json_schema().get('properties', {}))}",
                "invalid_inputs",
            ) from None
        return {k: getattr(validated, k) for k in self.inputs.model_fields}

    def chat_inputs(self, text: str) -> dict[str, Any]:
        """The last user message is the inputs: a JSON object of the input fields, or plain text when the
        program takes exactly one text field."""
        stripped = text.strip()
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, dict):
                return self.check_inputs(data)
        fields = self.inputs.model_fields
        if len(fields) == 1:
            return self.check_inputs({next(iter(fields)): text})
        raise RequestError(
            400,
            f"program {self.name!r} takes the fields {sorted(fields)}: send the last user message as a JSON "
            "object with them, or use POST /v1/programs/{name}/run",
            "invalid_inputs",
        )

    def output_text(self, value: Any) -> str:
        """Plain-text reply: the only text field when there is one, else the output as JSON."""
        data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        if isinstance(data, dict) and len(data) == 1:
            (only,) = data.values()
            if isinstance(only, str):
                return only
        return json.dumps(data)


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}" for err in e.errors())


def _import_class(path: str) -> Any:
    where, _, qualname = path.rpartition(":")
    if not where:
        raise ConfigurationError(f"class path {path!r} must look like 'module:Class' or 'file.py:Class'")
    if where.endswith(".py"):
        file = Path(where)
        if not file.exists():
            raise ConfigurationError(f"program class file {file} does not exist")
        module_name = f"compound_served_{file.stem}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, file)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigurationError(f"{where} has no {qualname!r}")
    return obj


def load_served(spec: str, name: str | None = None) -> Served:
    """``program.json`` (saved by ``Module.save``) or a built-in name (``write_email``)."""
    if spec in BUILTIN:
        program = _import_class(BUILTIN[spec])()
        name = name or spec
    else:
        path = Path(spec)
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigurationError(f"cannot read program file {path}: {e}") from e
        cls_path = state.get("class") if isinstance(state, dict) else None
        if not cls_path:
            raise ConfigurationError(
                f"{path} does not name its program class (no 'class' key): save it again with this compound's "
                'Module.save, or add "class": "module:ClassName"'
            )
        cls = _import_class(cls_path)
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise ConfigurationError(f"{cls_path} in {path} is not a compound Module")
        program = cls.load(path)
        name = name or path.stem
    return served_program(name, program)


def served_program(name: str, program: Module) -> Served:
    signature = getattr(program, "signature", None)
    if not isinstance(signature, Signature):
        raise ConfigurationError(
            f"program {name!r} ({type(program).__name__}) has no signature, so its inputs and outputs are "
            "unknown: set self.signature = Signature(Inputs, Outputs) in its __init__"
        )
    return Served(name, program, signature)
