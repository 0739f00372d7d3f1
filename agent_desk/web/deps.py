"""What the web layer is given: the collaborators of every feature's HTTP module, typed by
the Protocols below (what the handlers call, nothing more). The composition root builds one
``ConsoleDeps`` (hotline/desk.py); the features read it, never the service."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from redis.asyncio import Redis

from agent_desk.audit import Audit
from agent_desk.cases.store import ConsoleStore
from agent_desk.presence.services import AgentPresence
from agent_desk.supervision.wallboard import Wallboard
from agent_desk.web.auth import LoginLimiter, SessionGate, Sessions, Users
from cases.models import Case
from common.config import Config, WebSection
from common.facts import CallFact
from common.privacy import PersonalData


class LiveState(Protocol):
    async def agent(self, agent_id: str) -> dict[str, str]: ...
    async def call(self, call_id: str) -> dict[str, str]: ...


class Leg(Protocol):
    def snapshot(self) -> dict[str, Any]: ...


class CallControl(Protocol):
    """telephony.transfers.services.CallControl, as the console uses it."""

    def legs(self, call_id: str) -> list[Any]: ...
    async def transfer(self, *, call_id: str, agent_id: str, target: str,
                       mode: str) -> dict[str, Any]: ...
    # Plain defs: call control's actions are wrapped (each logs with its call and case).
    def three_way(self, call: str, agent_id: str) -> Awaitable[Leg]: ...
    def leave(self, call: str, agent_id: str) -> Awaitable[Leg]: ...
    def cancel(self, call: str, agent_id: str) -> Awaitable[Leg]: ...


class CaseFacts(Protocol):
    """The case store of the call facts (cases/store.py)."""

    async def apply(self, fact: CallFact) -> Any: ...
    def cached_number(self, call_id: str) -> str | None: ...
    async def links(self, number: str) -> list[tuple[str, str]]: ...


class RepeatCallers(Protocol):
    async def case_closed(self, caller_hash: str | None) -> None: ...


class SkillChange(Protocol):
    before: dict[str, int]
    after: dict[str, int]
    applied: int


class Skills(Protocol):
    def of(self, agent_id: str) -> dict[str, int]: ...
    async def change(self, agent_id: str, skills: dict[str, int], *, by: str) -> Any: ...


class Ami(Protocol):
    async def originate(self, *, channel: str, application: str | None = ...,
                        data: str | None = ..., caller_id: str | None = ...,
                        timeout_s: float = ..., variables: dict[str, str] | None = ...
                        ) -> Any: ...
    async def send_list(self, action: dict[str, Any]) -> list[Any]: ...
    async def hangup(self, channel: str) -> Any: ...


class Transcripts(Protocol):
    @property
    def dir(self) -> Path | None: ...  # where the recordings are

    async def for_case(self, case_number: str) -> dict[str, Any]: ...


class Surge(Protocol):
    async def status(self) -> dict[str, Any]: ...
    async def proposal(self, city_or_queue: str) -> dict[str, Any]: ...
    async def apply(self, proposal_id: str, by: str) -> dict[str, Any]: ...
    async def return_agents(self, agent_ids: list[str], by: str) -> dict[str, Any]: ...
    async def moves(self, limit: int) -> list[dict[str, Any]]: ...


@dataclass
class ConsoleDeps:
    """``web`` is read on every request (a test may swap it for other settings)."""

    cfg: Config
    web: WebSection
    redis: Redis
    personal: PersonalData
    sessions: Sessions
    gate: SessionGate
    users: Users
    limiter: LoginLimiter
    audit: Audit
    cases: ConsoleStore
    board: Wallboard
    presence: AgentPresence
    live: LiveState
    callcontrol: CallControl
    facts: CaseFacts
    repeat_callers: RepeatCallers
    skills: Skills
    ami_of: Callable[[str], Ami]
    exposition: Callable[[], Awaitable[str]]  # the Prometheus text (agent_desk/metrics.py)
    transcripts: Transcripts | None = None
    surge: Surge | None = None

    def current_call(self, agent: str) -> tuple[str, Mapping[str, Any]] | None:
        """The agent's latest live call on the wallboard (call id, call)."""
        calls = [(cid, c) for cid, c in self.board.calls.items() if c.get("agent") == agent]
        return calls[-1] if calls else None

    async def case_fact(self, number: str, kind: str, data: dict[str, Any], *,
                        case: Case | None = None) -> None:
        """A console fact on the case's call timeline (closing, callbacks)."""
        case = case or await self.cases.case_by(number=number)
        if case is not None and case.call_id:
            await self.facts.apply(CallFact(kind, case.call_id, case.node or "", time.time(),
                                            data, source="console"))
