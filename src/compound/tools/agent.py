"""A tool-using step: the model picks a tool and arguments (a typed, schema-constrained action), the
policy decides, allowed calls run, and every observation, denials included, goes back to the model as
data. Steps and tool calls are capped.

Every tool call has a time limit: the tool's own ``timeout_s``, else the agent's ``tool_timeout_s``
(``DEFAULT_TIMEOUT_S`` unless set). A tool that runs past it is stopped and the model is told it timed out.
Under a ``budget(wall_s=...)`` a running step (the model's turn or the tool call) is interrupted at the
deadline and the run ends with ``BudgetExceededError``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, create_model

from compound.core.budget import within_wall
from compound.core.errors import InputError
from compound.core.protocol import adrive
from compound.core.types import Message
from compound.core.validate import check_number
from compound.models.base import Backend
from compound.models.registry import get_model
from compound.models.typed import typed_call
from compound.program.module import Module
from compound.tools.base import DEFAULT_TIMEOUT_S, Tool
from compound.tools.policy import Decision, Policy, guarded_call

FINISH = "finish"


@dataclass
class AgentStep:
    tool: str
    arguments: dict[str, Any]
    thought: str = ""
    decision: Decision | None = None
    observation: Any = None


@dataclass
class AgentResult:
    answer: str | None
    steps: list[AgentStep] = field(default_factory=list)
    stopped: str = "finished"  # finished | step limit

    @property
    def tool_calls(self) -> list[AgentStep]:
        return [s for s in self.steps if s.tool != FINISH]


class ToolAgent(Module):
    parameter_names = ("instructions", "model")
    parameter_types = {"instructions": str, "model": str | None}

    def __init__(
        self,
        tools: list[Tool],
        *,
        model: str | Backend | None = None,
        policy: Policy | None = None,
        instructions: str = "Use the tools to complete the task, then finish with the answer.",
        max_steps: int = 6,
        max_tool_calls: int = 4,
        name: str | None = None,
        tool_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        check_number("ToolAgent tool_timeout_s", tool_timeout_s, above=0)
        self.tool_timeout_s = float(tool_timeout_s)
        self.tools = {t.name: t for t in tools}
        if FINISH in self.tools:
            raise InputError(f"a tool may not be called {FINISH!r}")
        self.model = model
        self.policy = policy or Policy(default="deny")
        self.instructions = instructions
        self.max_steps = max_steps
        self.max_tool_calls = max_tool_calls
        self.name = name
        names = tuple(self.tools) + (FINISH,)
        self.action_type = create_model(
            "Action",
            thought=(str, Field(description="why this action")),
            # the schema (and so constrained decoding) lists the tools, but an unknown name still parses:
            # it is answered to the model as an observation instead of failing the run
            tool=(str, Field(json_schema_extra={"enum": list(names)}, description="the tool to call")),
            # any JSON parses; arguments that are not an object are answered to the model, not fatal
            arguments=(Any, Field(default_factory=dict, json_schema_extra={"type": "object"})),
            answer=(str, Field(default="", description="the final answer, when tool is finish")),
        )

    @property
    def step_name(self) -> str:
        return self.name or "ToolAgent"

    def _system(self) -> str:
        lines = [self.instructions, "", "Tools:"]
        for t in self.tools.values():
            lines.append(f"- {t.name}: {t.description} Arguments schema: {json.dumps(t.schema['properties'])}")
        lines.append(f"- {FINISH}: give the final answer in 'answer'.")
        return "\n".join(lines)

    async def arun(self, task: str) -> AgentResult:
        backend = get_model(self.model)
        messages = [Message("user", f"Task: {task}")]
        result = AgentResult(answer=None)
        calls = 0
        for _ in range(self.max_steps):
            turn = adrive(typed_call(self.action_type, messages, self._system(), max_tokens=256), backend.agenerate)
            action: Any = (await within_wall(turn)).value
            arguments = dict(action.arguments) if isinstance(action.arguments, dict) else action.arguments
            step = AgentStep(action.tool, arguments, action.thought)
            result.steps.append(step)
            messages.append(Message("assistant", action.model_dump_json()))
            if action.tool == FINISH:
                result.answer = action.answer
                return result
            if calls >= self.max_tool_calls:
                step.decision = Decision(
                    False, f"tool-call limit of {self.max_tool_calls} reached; finish now", "limit"
                )
                step.observation = {"denied": step.decision.reason}
            else:
                step.observation = await self._call(step)
                calls += step.decision is not None and step.decision.allowed
            messages.append(Message("user", f"Observation: {json.dumps(step.observation, default=str)}"))
        result.stopped = "step limit"
        return result

    async def _call(self, step: AgentStep) -> Any:
        tool = self.tools.get(step.tool)
        if not isinstance(step.arguments, dict):
            step.decision = Decision(False, "the arguments must be a JSON object of named values", "agent")
            return {"error": step.decision.reason}
        if tool is None:
            known = ", ".join([*self.tools, FINISH])
            step.decision = Decision(False, f"there is no tool named {step.tool!r}; the tools are: {known}", "agent")
            return {"error": step.decision.reason}
        step.decision, observation = await guarded_call(
            tool, step.arguments, self.policy, default_timeout_s=self.tool_timeout_s
        )
        return observation

    async def aforward(self, task: str) -> str | None:
        return (await self.arun(task)).answer
