"""Permission policies: per call, allow, deny, or ask a callback, with constraints on the arguments.

The first rule that names the tool (or ``"*"``) decides. A constraint that fails turns an allow into a
deny with its reason. Decisions are data, and every one is traced.

Only an explicit yes grants: a constraint passes only when it returns ``True``, and an ``ask`` callback
approves only when it returns ``True`` (the bool itself) or a ``Decision`` with ``allowed=True``. Anything
else denies, with the answer named in the reason: ``"yes"``, ``"no"``, ``1``, ``None``, any other object,
and a callback or constraint that raises (its error is the reason). The model gets the denial as data.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from compound.tools.base import contained

Action = Literal["allow", "deny", "ask"]
#: a constraint returns True (fine), False, or a string saying why not
Constraint = Callable[[dict[str, Any]], "bool | str"]
#: asked for ``ask`` rules: ``callback(tool_name, arguments)`` returns True (or an allowing ``Decision``)
#: to allow; anything else denies. It may be async.
AskCallback = Callable[[str, dict[str, Any]], "bool | Decision | Awaitable[bool | Decision]"]


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
                except BaseException as e:
                    ok = f"constraint raised {type(contained(e)).__name__}: {e}"
                if ok is not True:
                    why = ok if isinstance(ok, str) else f"arguments fail constraint {getattr(c, '__name__', c)!s}"
                    return Decision(False, why, by)
            if rule.action == "allow":
                return Decision(True, "allowed by policy", by)
            return await _ask(rule.callback, tool, arguments, by)
        return Decision(self.default == "allow", f"no rule names {tool!r}; default is {self.default}", "default")


ALLOW_ALL = Policy(default="allow")


async def _ask(callback: AskCallback | None, tool: str, arguments: dict[str, Any], by: str) -> Decision:
    """Ask the approver; grant only on ``True`` or an allowing ``Decision``."""
    if callback is None:
        return Decision(False, "an ask rule without a callback denies", by)
    try:
        answer = callback(tool, arguments)
        if inspect.isawaitable(answer):
            answer = await answer
    except BaseException as e:
        return Decision(False, f"the approver raised {type(contained(e)).__name__}: {e}; denied", by)
    if answer is True:
        return Decision(True, "approved by callback", by)
    if isinstance(answer, Decision):
        return Decision(answer.allowed is True, answer.reason or "decided by callback", by)
    if answer is False:
        return Decision(False, "refused by callback", by)
    return Decision(False, f"the approver answered {answer!r}, not True; only True approves, so denied", by)


async def guarded_call(
    tool: Any, arguments: dict[str, Any], policy: Policy, *, default_timeout_s: float | None = None
) -> tuple[Decision, Any]:
    """Ask the policy, then run the tool only if allowed. Both the decision and the call are traced.
    Returns the decision and the observation: the result, ``{"denied": reason}`` or ``{"error": ...}`` (a
    tool that timed out included: the model is told so). A budget's wall-time deadline is raised."""
    from compound.core.errors import BudgetExceededError
    from compound.store.traces import span
    from compound.tools.base import ToolArgumentError, ToolFailed

    with span("permission", tool.name, arguments=arguments) as s:
        decision = await policy.decide(tool.name, arguments)
        s.attrs.update(decision="allow" if decision.allowed else "deny", **decision.to_dict())
    if not decision.allowed:
        return decision, {"denied": decision.reason}
    with span("tool", tool.name, arguments=arguments) as s:
        try:
            out = tool.capped(await tool.acall(arguments, default_timeout_s=default_timeout_s))
        except (ToolArgumentError, ToolFailed, TimeoutError) as e:
            s.status, out = "error", {"error": str(e) or f"{type(e).__name__} in tool {tool.name!r}"}
        except BudgetExceededError:
            s.status = "error"
            raise
        except BaseException as e:  # the caller (often a model) sees the failure as data; the host goes on
            s.status, out = "error", {"error": f"{type(contained(e)).__name__}: {e}"}
        s.attrs["result"] = out
        return decision, out
