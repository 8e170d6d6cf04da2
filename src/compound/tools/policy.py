"""Permission policies: per call, allow, deny, or ask a callback, with constraints on the arguments.

The first rule that names the tool (or ``"*"``) decides. A constraint that fails turns an allow into a
deny with its reason. Decisions are data, and every one is traced.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["allow", "deny", "ask"]
#: a constraint returns True (fine), False, or a string saying why not
Constraint = Callable[[dict[str, Any]], "bool | str"]
#: asked for ``ask`` rules: ``callback(tool_name, arguments)`` returns True to allow (may be async)
AskCallback = Callable[[str, dict[str, Any]], "bool | Awaitable[bool]"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    by: str  # which rule (or "default") decided

    def to_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason, "by": self.by}


@dataclass
class Rule:
    tool: str
    action: Action
    constraints: tuple[Constraint, ...] = ()
    callback: AskCallback | None = None
    reason: str = ""


class Policy:
    def __init__(self, default: Literal["allow", "deny"] = "deny") -> None:
        self.default = default
        self.rules: list[Rule] = []

    def allow(self, tool: str, *constraints: Constraint) -> Policy:
        self.rules.append(Rule(tool, "allow", constraints))
        return self

    def deny(self, tool: str, reason: str = "denied by policy") -> Policy:
        self.rules.append(Rule(tool, "deny", reason=reason))
        return self

    def ask(self, tool: str, callback: AskCallback, *constraints: Constraint) -> Policy:
        self.rules.append(Rule(tool, "ask", constraints, callback))
        return self

    async def decide(self, tool: str, arguments: dict[str, Any]) -> Decision:
        for i, rule in enumerate(self.rules):
            if rule.tool not in (tool, "*"):
                continue
            by = f"rule {i} ({rule.action} {rule.tool})"
            if rule.action == "deny":
                return Decision(False, rule.reason, by)
            for c in rule.constraints:
                try:
                    ok = c(arguments)
                except Exception as e:
                    ok = f"constraint raised {type(e).__name__}: {e}"
                if ok is not True:
                    why = ok if isinstance(ok, str) else f"arguments fail constraint {getattr(c, '__name__', c)!s}"
                    return Decision(False, why, by)
            if rule.action == "allow":
                return Decision(True, "allowed by policy", by)
            answer = rule.callback(tool, arguments) if rule.callback else False
            if inspect.isawaitable(answer):
                answer = await answer
            return Decision(bool(answer), "approved by callback" if answer else "refused by callback", by)
        return Decision(self.default == "allow", f"no rule names {tool!r}; default is {self.default}", "default")


ALLOW_ALL = Policy(default="allow")


async def guarded_call(tool: Any, arguments: dict[str, Any], policy: Policy) -> tuple[Decision, Any]:
    """Ask the policy, then run the tool only if allowed. Both the decision and the call are traced.
    Returns the decision and the observation: the result, ``{"denied": reason}`` or ``{"error": ...}``."""
    from compound.store.traces import span
    from compound.tools.base import ToolArgumentError

    with span("permission", tool.name, arguments=arguments) as s:
        decision = await policy.decide(tool.name, arguments)
        s.attrs.update(decision="allow" if decision.allowed else "deny", **decision.to_dict())
    if not decision.allowed:
        return decision, {"denied": decision.reason}
    with span("tool", tool.name, arguments=arguments) as s:
        try:
            out = await tool.acall(arguments)
        except ToolArgumentError as e:
            s.status, out = "error", {"error": str(e)}
        except Exception as e:  # the caller (often a model) sees the failure as data
            s.status, out = "error", {"error": f"{type(e).__name__}: {e}"}
        s.attrs["result"] = out
        return decision, out
