"""Typed steps: ``Predict`` and ``ChainOfThought``, built from a ``Signature`` of pydantic models.

One path per call: a step without a strategy runs the ``Single`` strategy (one greedy candidate), so
with or without a strategy it gives the same trace tree (step, candidate, calls), the same errors
(``OutputParseError`` when no candidate parsed) and the same logprob confidence. The sync call of a step
without a strategy runs without an event loop. A candidate is a request protocol (a generator that
yields requests and returns a ``Candidate``), driven sync or async by the same code.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Generator
from typing import Any

from pydantic import BaseModel, Field, create_model

from compound.control.requirements import as_requirement
from compound.core.concurrency import run_sync
from compound.core.errors import ConfigurationError, InputError, OutputParseError
from compound.core.protocol import adrive, drive
from compound.core.types import Generation, Message, Request
from compound.models.base import Backend, build_request
from compound.models.registry import get_model
from compound.models.typed import OutputSpec, model_with, output_spec, typed_call
from compound.program.module import Module
from compound.program.streaming import SINK, StepStream, partials, streamed_calls
from compound.strategies.base import Candidate, Single, Strategy, StrategyResult


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
            return model_with(name, {n: (str, ...) for n in names})

        return cls(model("Inputs", left), model("Outputs", right), instructions)


def render_inputs(inputs: dict[str, Any]) -> str:
    """Inputs as the user message shows them: ``name: value`` lines (a block for multi-line values)."""
    lines = []
    for k, v in inputs.items():
        text = v.model_dump_json() if isinstance(v, BaseModel) else str(v)
        lines.append(f"{k}:\n{text}" if "\n" in text else f"{k}: {text}")
    return "\n".join(lines)


class Predict(Module):
    """One typed model call, under an optional strategy.

    Args:
        signature: a ``Signature`` or ``"question, context -> answer"``.
        instructions: the task's instruction (defaults to the signature's).
        demos: input/output examples, each a dict of input and output fields.
        model: a model spec or backend; None for the settings' default model.
        requirements: ``Check``/``Regex``/``Conforms``/``LLMJudge`` (or functions); they need a strategy.
        strategy: ``Repair``, ``RejectionSampling``, ``SelfConsistency`` ...; None draws one candidate.
        max_tokens: the reply's token limit.
        sample_temperature: the temperature of candidates after the first (which is greedy).
        logprobs: ask for token logprobs, where the backend gives them (a confidence signal).
        parse_repairs: how many times a reply that does not validate is sent back with the errors,
            within one candidate (each one a call, counted in the result).
        output_format: ``"json"`` (the default: the reply is constrained to the output schema) or
            ``"text"``: an output of one ``str`` field asked for as plain text, with no schema sent
            (``compound.models.typed.TextOutput``); any other output type is refused.
        name: the step's name in traces.

    Calling the step (``step(**inputs)``) returns the value; ``step.result(**inputs)`` the whole
    ``StrategyResult``. Parameters saved with the program: ``instructions``, ``demos``, ``model``.
    """

    parameter_names = ("instructions", "demos", "model")
    #: a streamed call whose text this flags is stopped there (``program.streaming.repeats``, say)
    runaway: Callable[[str], bool] | None = None
    parameter_types = {"instructions": str | None, "demos": list[dict[str, Any]], "model": str | None}

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
        parse_repairs: int = 1,
        output_format: str = "json",
        name: str | None = None,
    ) -> None:
        self.logprobs = logprobs
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
        if parse_repairs < 0:
            raise ConfigurationError(f"parse_repairs must be 0 or more, got {parse_repairs}")
        if max_tokens <= 0:
            raise ConfigurationError(f"max_tokens must be positive, got {max_tokens}: give the reply's token limit")
        self.strategy = strategy
        self.max_tokens = max_tokens
        self.sample_temperature = sample_temperature
        self.parse_repairs = parse_repairs
        self.output_format = output_format
        self.name = name
        self.output_spec  # noqa: B018  (an output the format cannot take is refused here, not at the first call)

    @property
    def step_name(self) -> str:
        """The step's name in traces."""
        return self.name or f"{type(self).__name__}({self.signature.outputs.__name__})"

    def with_(self, **changes: Any) -> Predict:
        """A copy of this step with some of its settings changed (``model=``, ``name=``, ``demos=`` ...).

        Everything not named is kept, the step's class too (a ``ChainOfThought`` stays one); the copy
        shares nothing mutable with this step.
        """
        unknown = sorted(set(changes) - set(vars(self)))
        if unknown:
            raise InputError(f"{type(self).__name__} has no setting(s) {unknown}; it has {sorted(vars(self))}")
        new = copy.copy(self)
        new.demos = list(self.demos)
        new.requirements = list(self.requirements)
        for name, value in changes.items():
            setattr(new, name, [as_requirement(r) for r in value] if name == "requirements" else value)
        return new

    # --- parameters: a backend object is kept when its id is loaded back -----------------------------
    def get_parameter(self, name: str) -> Any:
        """A parameter's value; a backend object is saved as its model id."""
        if name == "model" and isinstance(self.model, Backend):
            return self.model.model_id
        return getattr(self, name)

    def set_parameter(self, name: str, value: Any) -> None:
        """Set a parameter; loading a backend's own model id back keeps the backend object."""
        if name == "model" and isinstance(self.model, Backend) and value == self.model.model_id:
            return
        setattr(self, name, value)

    def backend(self) -> Backend:
        """The backend the step calls: its ``model``, or the settings' default model."""
        return get_model(self.model)

    # --- prompting ---------------------------------------------------------------------------------------
    @property
    def output_type(self) -> type[BaseModel]:
        """The type of the step's value."""
        return self.signature.outputs

    @property
    def output_spec(self) -> OutputSpec:
        """How the reply is asked for and parsed (``output_format``)."""
        return output_spec(self.output_type, self.output_format)

    def _check_parameter(self, name: str, value: Any) -> str | None:
        if name == "demos":
            return self.check_examples(value, "demos")
        return None

    def check_examples(self, examples: list[dict[str, Any]], what: str) -> str | None:
        """What is wrong with ``examples`` (demos) for this step's signature, or None.

        Each must hold every output field, with a value of its type, and at least one input field.
        """
        from pydantic import ValidationError

        inputs, outputs = self.signature.inputs.model_fields, self.output_type.model_fields
        for i, example in enumerate(examples):
            if not any(k in example for k in inputs):
                return f"{what}[{i}] has none of the input fields ({', '.join(inputs)})"
            try:
                self.output_type.model_validate({k: example[k] for k in outputs if k in example})
            except ValidationError as e:
                wrong = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:3])
                return f"{what}[{i}] does not fit the step's outputs ({wrong})"
        return None

    def messages(self, inputs: dict[str, Any]) -> list[Message]:
        """The conversation for ``inputs``: each demo as a user/assistant pair, then the inputs."""
        msgs = []
        for demo in self.demos:
            demo_in = {k: demo[k] for k in self.signature.inputs.model_fields if k in demo}
            demo_out = self.output_type.model_validate({k: demo[k] for k in self.output_type.model_fields if k in demo})
            msgs += [Message("user", render_inputs(demo_in)), Message("assistant", self.output_spec.render(demo_out))]
        msgs.append(Message("user", render_inputs(inputs)))
        return msgs

    def _checked_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        try:
            validated = self.signature.inputs.model_validate(inputs)
        except Exception as e:
            raise ConfigurationError(f"{self.step_name}: bad inputs: {e}") from None
        return {k: getattr(validated, k) for k in self.signature.inputs.model_fields}

    def _temperature(self, index: int) -> float:
        return self.sample_temperature if index > 0 else 0.0

    def _answer(
        self, index: int, messages: list[Message], done: list[Generation]
    ) -> Generator[Request, Generation, Candidate]:
        """The typed answer of candidate ``index``, after the calls in ``done``.

        A reply that never parses becomes a candidate with an error (and every call it took), not a raise.
        """
        try:
            typed = yield from typed_call(
                self.output_spec,
                messages,
                self.instructions or None,
                parse_repairs=self.parse_repairs,
                max_tokens=self.max_tokens,
                temperature=self._temperature(index),
                sample_index=index,
                logprobs=self.logprobs,
            )
        except OutputParseError as e:
            return Candidate(
                index, text=e.raw_text, error=f"reply did not parse: {e.errors}", generations=[*done, *e.generations]
            )
        return Candidate(
            index, self.finish_value(typed.value, done), typed.generations[-1].text, [*done, *typed.generations]
        )

    def finish_value(self, value: Any, done: list[Generation]) -> Any:
        """The candidate's value from the parsed answer (subclasses add what earlier calls gave)."""
        return value

    def protocol(
        self, inputs: dict[str, Any], index: int, feedback: tuple[Message, ...]
    ) -> Generator[Request, Generation, Candidate]:
        """Candidate ``index`` (0 is greedy, later ones sampled) as a request protocol."""
        return self._answer(index, self.messages(inputs) + list(feedback), [])

    async def sample(self, inputs: dict[str, Any], index: int, feedback: tuple[Message, ...]) -> Candidate:
        """Candidate ``index``, as data: a parse failure is an error on the candidate, not a raise.

        Inside ``astream`` its calls are streamed (``program.streaming``).
        """
        backend, sink = self.backend(), SINK.get()
        call = (
            backend.agenerate if sink is None else streamed_calls(backend, self.output_spec, index, sink, self.runaway)
        )
        return await adrive(self.protocol(inputs, index, feedback), call)

    # --- running -----------------------------------------------------------------------------------------
    async def aresult(self, **inputs: Any) -> StrategyResult:
        """``result`` on the event loop."""
        checked = self._checked_inputs(inputs)
        strategy = self.strategy or _SINGLE
        return await strategy.arun(lambda i, fb: self.sample(checked, i, fb), self.requirements, checked)

    def result(self, **inputs: Any) -> StrategyResult:
        """Run the step and return the whole ``StrategyResult``.

        Args:
            **inputs: the signature's input fields.

        Returns:
            Every candidate with its validations, calls and usage, which one was chosen and why.
            Without a strategy, no event loop is started.
        """
        if self.strategy is not None:
            return run_sync(self.aresult(**inputs))
        checked = self._checked_inputs(inputs)
        backend = self.backend()
        return _SINGLE.run(lambda i, fb: drive(self.protocol(checked, i, fb), backend.generate))

    def astream(self, **inputs: Any) -> StepStream:
        """Run the step, yielding its reply as it is written.

        Each item is a ``program.streaming.Partial``: the text's delta, the text so far, and the partial
        object parsed from it. Afterwards ``.value`` holds the validated value and ``.result`` the
        ``StrategyResult``. Use ``async for``; closing it cancels the step.
        """
        return StepStream(partials(lambda: self.aresult(**inputs)), functools.partial(_value_or_raise, self.step_name))

    def stream(self, **inputs: Any) -> StepStream:
        """``astream`` for sync code (``for partial in step.stream(...)``), on an event loop of its own."""
        return self.astream(**inputs)

    #: the old names, kept for one release
    run, arun = result, aresult

    async def aforward(self, **inputs: Any) -> Any:
        """``forward`` on the event loop."""
        return _value_or_raise(self.step_name, await self.aresult(**inputs))

    def forward(self, **inputs: Any) -> Any:
        """The chosen candidate's value; ``OutputParseError`` when no candidate parsed."""
        return _value_or_raise(self.step_name, self.result(**inputs))


def _value_or_raise(step: str, result: StrategyResult) -> Any:
    """The chosen value; when not even one candidate parsed there is none to return, so raise."""
    best = result.best
    if best.error is not None:
        raise OutputParseError(
            f"{step}: {result.note}", best.text, best.error, [g.text for g in best.generations], best.generations
        )
    return result.value


_SINGLE = Single()

REASONING_PROMPT = "Think step by step about the task above. Write only your reasoning; the final answer comes next."
ANSWER_PROMPT = "Now give the final answer."


@functools.lru_cache(maxsize=128)
def with_reasoning(output_type: type[BaseModel]) -> type[BaseModel]:
    """The output type plus a ``reasoning`` field (filled from the free-text phase, not generated)."""
    return create_model(
        f"{output_type.__name__}WithReasoning", __base__=output_type, reasoning=(str, Field(default=""))
    )


class ChainOfThought(Predict):
    """Reason in free text first, then answer under the output schema.

    The format constraint then does not squeeze the reasoning. The value is the output type with a
    ``reasoning`` field.

    Args:
        signature: as for ``Predict``.
        reasoning_tokens: the token limit of the free-text reasoning.
        **kwargs: every other ``Predict`` argument.
    """

    def __init__(self, signature: Signature | str, *, reasoning_tokens: int = 256, **kwargs: Any) -> None:
        super().__init__(signature, **kwargs)
        self.reasoning_tokens = reasoning_tokens

    def protocol(
        self, inputs: dict[str, Any], index: int, feedback: tuple[Message, ...]
    ) -> Generator[Request, Generation, Candidate]:
        """Candidate ``index``: a free-text reasoning call, then the typed answer."""
        base = self.messages(inputs) + list(feedback)
        system = [Message("system", self.instructions)] if self.instructions else []
        thought = yield build_request(
            system + base + [Message("user", REASONING_PROMPT)],
            {"max_tokens": self.reasoning_tokens, "temperature": self._temperature(index), "sample_index": index},
        )
        answer = base + [Message("assistant", thought.text), Message("user", ANSWER_PROMPT)]
        return (yield from self._answer(index, answer, [thought]))

    def finish_value(self, value: Any, done: list[Generation]) -> Any:
        """The answer with the reasoning call's text as its ``reasoning``."""
        return with_reasoning(self.output_type)(**value.model_dump(), reasoning=done[0].text.strip())
