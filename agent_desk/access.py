"""Need-to-know: which cases a console user may see (docs/security.md, "Who sees which case").

- an agent: the case of their current call, the cases they answered, the earlier cases of
  their current caller (the screen pop's repeat-caller panel; in the agent's city or the
  current case's), and the cases of their city's callback list (abandoned calls to ring back);
- a supervisor or admin: every case of their city (the province: every city);
- an auditor: no case (the audit log only);
- a quality inspector (qa): the calls drawn for 质检 (agent_desk/quality) of their city, with
  the caller masked;
- a department user: the cases dispatched to their department (any round, unless the
  dispatch was cancelled before they saw it), with the caller masked.

The rule is one SQL condition (``Scope.condition``), applied by the store to every read and
change of a case, so a search, a detail, a form, an export and a screen pop all agree. A case
outside it does not exist for the user (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, or_, select, true

from agent_desk.models import CallbackTask, QaSample
from cases.loop.models import Dispatch
from cases.models import Case

# Roles that see every case of their city (within it, no need-to-know by call).
CITY_WIDE = ("supervisor", "admin")
# Not a console role: the service's own reads (retention, tools, tests of the store).
SYSTEM = "system"


@dataclass(frozen=True)
class CurrentCall:
    """The case on the agent's line now (from the live state)."""

    case_id: int
    city: str | None
    caller_hash: str | None


@dataclass(frozen=True)
class Scope:
    """Who asks, and the cases that makes visible. ``city`` None: the province."""

    user: str
    role: str
    city: str | None
    agent: str | None = None
    current: CurrentCall | None = None
    department: str | None = None  # role "department": the 承办单位 they work for

    @classmethod
    def everything(cls, user: str = "system") -> Scope:
        """The service itself and its tools (no console user): every case."""
        return cls(user, SYSTEM, city=None)

    @classmethod
    def nobody(cls, user: str) -> Scope:
        """A user the database does not know (any more), or a disabled one: sees no case."""
        return cls(user, "", city=None)

    def _in_city(self, *cities: str | None) -> Any:
        if self.city is None:
            return true()
        return Case.city.in_({self.city, *(c for c in cities if c)})

    def condition(self) -> Any:
        """The SQL condition on ``Case`` of what this user may see."""
        if self.role == SYSTEM:
            return true()
        if self.role in CITY_WIDE:
            return self._in_city()
        if self.role == "qa":
            return and_(Case.id.in_(select(QaSample.case_id)), self._in_city())
        if self.role == "department":
            if not self.department:
                return false()
            return Case.id.in_(select(Dispatch.case_id).where(
                Dispatch.department_id == self.department, Dispatch.state != "cancelled"))
        if self.role != "agent" or not self.agent:
            return false()
        seen = [Case.agent_id == self.agent,
                Case.id.in_(select(CallbackTask.case_id).where(
                    true() if self.city is None else CallbackTask.city == self.city))]
        cur = self.current
        if cur is not None:
            seen.append(Case.id == cur.case_id)
            if cur.caller_hash:
                seen.append(and_(Case.caller_hash == cur.caller_hash, self._in_city(cur.city)))
        return or_(*seen)

    def task_condition(self) -> Any:
        """The SQL condition on ``CallbackTask`` of the callback list the user works on."""
        if self.role == SYSTEM:
            return true()
        if self.role not in (*CITY_WIDE, "agent") or (self.role == "agent" and not self.agent):
            return false()
        return true() if self.city is None else CallbackTask.city == self.city
