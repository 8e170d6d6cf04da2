"""Typed steps: ``Predict`` and ``ChainOfThought``, built from a ``Signature`` of pydantic models."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, Field, create_model

from compound.control.requirements import as_requirement
from compound.core.concurrency import run_sync
from compound.core.errors import ConfigurationError, OutputParseError
from compound.core.types import Message
from compound.models.base import Backend
from compound.models.registry import get_model
from compound.program.module import Module
from compound.program.typed import adrive, drive, output_spec, typed_protocol, typed_request
from compound.strategies.base import Candidate, Strategy, StrategyResult


class Signature:
    """What a step takes and gives: two pydantic models and an instruction."""

    def __init__(self, inputs: type[BaseModel], outputs: type[BaseModel], instructions: str = "") -> None:
        self.inputs = inputs
        self.outputs = outputs
        self.instructions = instructions

    @classmethod
    def parse(cls, spec: str, instructions: str = "") -> Signature:
        """``"question, context -> answer"``: every field a string."""
        if "->" not in spec:
            raise ConfigurationError(
                f"signature {spec!r} needs '->' between inputs and outputs, e.g. 'question -> answer'"
            )
        left, right = (part.strip() for part in spec.split("->", 1))

        def model(name: str, fields: str) -> type[BaseModel]:
            names = [f.strip() for f in fields.split(",") if f.strip()]
            if not names:
                raise ConfigurationError(f"signature {spec!r} has no {name.lower()} fields")
            return create_model(name, **{n: (str, ...) for n in names})

        return cls(model("Inputs", left), model("Outputs", right), instructions)


def render_inputs(inputs: dict[str, Any]) -> str:
    lines = []
    for k, v in inputs.items():
        text = v.model_dump_json() if isinstance(v, BaseModel) else str(v)
        lines.append(f"{k}:\n{text}" if "\n" in text else f"{k}: {text}")
    return "\n".join(lines)


class Predict(Module):
    """One typed model call. Parameters: ``instructions``, ``demos`` (input/output examples), ``model``."""

    parameter_names = ("instructions", "demos", "model")

    def __init__(
        self,
        signature: Signature | str,
        *,
        instructions: str | None = None,
        demos: list[dict[str, Any]] | None = None,
        model: str | Backend | None = None,
        requirements: list[Any] | None = None,
        strategy: Strategy | None = None,
        max_tokens: int = 512,
        sample_temperature: float = 0.7,
        logprobs: bool = False,
        name: str | None = None,
    ) -> None:
        self.logprobs = logprobs  # ask for token logprobs (a confidence signal) where the backend gives them
        self.signature = Signature.parse(signature) if isinstance(signature, str) else signature
        self.instructions = instructions if instructions is not None else self.signature.instructions
        self.demos = list(demos or [])
        self.model = model
        self.requirements = [as_requirement(r) for r in requirements or []]
        if self.requirements and strategy is None:
            raise ConfigurationError(
                "requirements were given without a strategy, so nothing would enforce them: "
                "pass strategy=Repair(...) or strategy=RejectionSampling(...)"
            )
        self.strategy = strategy
        self.max_tokens = max_tokens
        self.sample_temperature = sample_temperature
        self.name = name

    @property
    def step_name(self) -> str:
        return self.name or f"{type(self).__name__}({self.signature.outputs.__name__})"

    # --- parameters: a backend object is kept when its id is loaded back -----------------------------
    def get_parameter(self, name: str) -> Any:
        if name == "model" and isinstance(self.model, Backend):
            return self.model.model_id
        return getattr(self, name)

    def set_parameter(self, name: str, value: Any) -> None:
        if name == "model" and isinstance(self.model, Backend) and value == self.model.model_id:
            return
        setattr(self, name, value)

    # --- prompting ---------------------------------------------------------------------------------------
    @property
    def output_type(self) -> type[BaseModel]:
        return self.signature.outputs

    def messages(self, inputs: dict[str, Any]) -> list[Message]:
        msgs = []
        for demo in self.demos:
            demo_in = {k: demo[k] for k in self.signature.inputs.model_fields if k in demo}
            demo_out = self.output_type.model_validate({k: demo[k] for k in self.output_type.model_fields if k in demo})
            msgs += [Message("user", render_inputs(demo_in)), Message("assistant", demo_out.model_dump_json())]
        msgs.append(Message("user", render_inputs(inputs)))
        return msgs

    def _checked_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        try:
            validated = self.signature.inputs.model_validate(inputs)
        except Exception as e:
            raise ConfigurationError(f"{self.step_name}: bad inputs: {e}") from None
        return {k: getattr(validated, k) for k in self.signature.inputs.model_fields}

    def _request(
        self,
        inputs: dict[str, Any],
        index: int,
        feedback: tuple[Message, ...],
        output_type: type[BaseModel] | None = None,
    ):
        spec = output_spec(output_type or self.output_type)
        temperature = self.sample_temperature if index > 0 else 0.0
        return spec, typed_request(
            spec,
            self.messages(inputs) + list(feedback),
            self.instructions or None,
            max_tokens=self.max_tokens,
            temperature=temperature,
            sample_index=index,
            logprobs=self.logprobs,
        )

    async def sample(self, inputs: dict[str, Any], index: int, feedback: tuple[Message, ...]) -> Candidate:
        """Candidate ``index`` (0 is greedy, later ones sampled), as data: a parse failure is an error, not a raise."""
        spec, request = self._request(inputs, index, feedback)
        try:
            typed = await adrive(typed_protocol(spec, request), get_model(self.model))
        except OutputParseError as e:
            return Candidate(index, text=e.raw_text, error=f"reply did not parse: {e.errors}")
        return Candidate(index, typed.value, typed.generations[-1].text, typed.generations)

    # --- running -----------------------------------------------------------------------------------------
    async def aresult(self, **inputs: Any) -> StrategyResult:
        """Run with the strategy (or a single attempt) and return every candidate as data."""
        checked = self._checked_inputs(inputs)
        strategy = self.strategy or _SINGLE
        return await strategy.arun(lambda i, fb: self.sample(checked, i, fb), self.requirements, checked)

    def result(self, **inputs: Any) -> StrategyResult:
        """Like calling the step, but return the whole ``StrategyResult``: every candidate, its
        validations, calls and usage, which one was chosen and why."""
        return run_sync(self.aresult(**inputs))

    #: the old names, kept for one release
    run, arun = result, aresult

    async def aforward(self, **inputs: Any) -> Any:
        if self.strategy is None:
            checked = self._checked_inputs(inputs)
            spec, request = self._request(checked, 0, ())
            return (await adrive(typed_protocol(spec, request), get_model(self.model))).value
        return _value_or_raise(self.step_name, await self.aresult(**inputs))

    def forward(self, **inputs: Any) -> Any:
        if self.strategy is None:  # the common case stays off the event loop
            checked = self._checked_inputs(inputs)
            spec, request = self._request(checked, 0, ())
            return drive(typed_protocol(spec, request), get_model(self.model)).value
        return run_sync(self.aforward(**inputs))


def _value_or_raise(step: str, result: StrategyResult) -> Any:
    """The chosen value; when not even one candidate parsed there is none to return, so raise."""
    if result.best.error is not None:
        raise OutputParseError(f"{step}: {result.note}", result.best.text, result.best.error)
    return result.value


class _Single(Strategy):
    name = "single"

    async def arun(self, sample, requirements, inputs) -> StrategyResult:
        result = self.finish([await self.candidate(sample, 0, (), requirements, inputs)])
        result.confidence = result.best.logprob_confidence
        return result


_SINGLE = _Single()

REASONING_PROMPT = "Think step by step about the task above. Write only your reasoning; the final answer comes next."
ANSWER_PROMPT = "Now give the final answer."


@functools.lru_cache(maxsize=128)
def with_reasoning(output_type: type[BaseModel]) -> type[BaseModel]:
    """The output type plus a ``reasoning`` field (filled from the free-text phase, not generated)."""
    return create_model(
        f"{output_type.__name__}WithReasoning", __base__=output_type, reasoning=(str, Field(default=""))
    )


class ChainOfThought(Predict):
    """Reason in free text first, then answer under the output schema, so the format constraint does not
    squeeze the reasoning. The value is the output type with a ``reasoning`` field."""

    def __init__(self, signature: Signature | str, *, reasoning_tokens: int = 256, **kwargs: Any) -> None:
        super().__init__(signature, **kwargs)
        self.reasoning_tokens = reasoning_tokens

    async def sample(self, inputs: dict[str, Any], index: int, feedback: tuple[Message, ...]) -> Candidate:
        backend = get_model(self.model)
        base = self.messages(inputs) + list(feedback)
        system = [Message("system", self.instructions)] if self.instructions else []
        temperature = self.sample_temperature if index > 0 else 0.0
        thought = await backend.agenerate(
            system + base + [Message("user", REASONING_PROMPT)],
            max_tokens=self.reasoning_tokens,
            temperature=temperature,
            sample_index=index,
        )
        spec = output_spec(self.output_type)
        request = typed_request(
            spec,
            base + [Message("assistant", thought.text), Message("user", ANSWER_PROMPT)],
            self.instructions or None,
            max_tokens=self.max_tokens,
            temperature=temperature,
            sample_index=index,
        )
        try:
            typed = await adrive(typed_protocol(spec, request), backend)
        except OutputParseError as e:
            return Candidate(index, text=e.raw_text, error=f"reply did not parse: {e.errors}", generations=[thought])
        value = with_reasoning(self.output_type)(**typed.value.model_dump(), reasoning=thought.text.strip())
        return Candidate(index, value, typed.generations[-1].text, [thought, *typed.generations])

    async def aforward(self, **inputs: Any) -> Any:
        return _value_or_raise(self.step_name, await self.aresult(**inputs))

    def forward(self, **inputs: Any) -> Any:
        return run_sync(self.aforward(**inputs))
