"""Agents' sign-in (签入/签出) and ready/pause (示闲/示忙) as the console sets them.

Sign-in state is kept in Redis (``<prefix>:signed_in``: agent -> "1"/"0") so every service
and a restart agree; until the console says otherwise the configuration's ``auto_login``
decides. Signing in or out re-applies the agent's queue memberships on the agent's node
(MembershipSync.apply_agent); pausing is AMI QueuePause with the reason, which Asterisk
reports back as QueueMemberPause and the live state publishes for the wallboards.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from redis.asyncio import Redis

from common.config import Config
from common.errors import DomainError
from common.livekeys import LiveKeys
from common.queues import interface
from common.replies import text_map
from telephony.ami import AmiClient, AmiError

log = logging.getLogger(__name__)

PAUSE_REASONS = ("rest", "training", "after_call_work", "meeting", "supervisor")


class StateLog(Protocol):
    """Agents' presence changes kept as facts (agent_desk/figures/store.py AgentStateLog):
    the agent figures count signed-in and paused time from them."""

    async def record(self, agent: str, kind: str, reason: str = "", *, by: str,
                     at: float | None = None) -> bool: ...
    async def last(self) -> dict[str, tuple[str, str]]: ...


class PresenceError(DomainError):
    """An action that does not fit the agent's state (the console answers 409)."""


class AgentPresence:
    def __init__(self, cfg: Config, redis: Redis, prefix: str, *,
                 ami_of: Callable[[str], AmiClient],
                 apply_of: Callable[[str], Callable[[str], Awaitable[int]] | None],
                 log: StateLog | None = None):
        self.cfg = cfg
        self.log = log
        # Each agent's latest change as stored (a repeat of it is not a new fact).
        self._noted: dict[str, tuple[str, str]] = {}
        self.redis = redis
        self.key = f"{prefix}:signed_in"
        self.events = LiveKeys(prefix).events
        self.ami_of = ami_of
        self.apply_of = apply_of
        self._state: dict[str, bool] = {}

    async def load(self) -> None:
        for agent, v in text_map(await self.redis.hgetall(self.key)).items():
            self._state[agent] = v == "1"
        await self._note_start()

    async def _note_start(self) -> None:
        """At start, the facts agree with who is signed in (configured ``auto_login`` agents
        have no sign-in of their own): a change is recorded where they differ."""
        if self.log is None:
            return
        try:
            self._noted = await self.log.last()
        except Exception as exc:
            log.warning("agent states not read", extra={"error": str(exc) or type(exc).__name__})
            return
        for a in self.cfg.agents:
            signed = self.is_signed_in(a.id)
            last = self._noted.get(a.id, ("signed_out", ""))[0]
            if signed != (last != "signed_out"):
                await self._note(a.id, "signed_in" if signed else "signed_out", by="start")

    async def _note(self, agent: str, kind: str, reason: str = "", *, by: str) -> None:
        if self.log is None or self._noted.get(agent) == (kind, reason):
            return
        try:
            await self.log.record(agent, kind, reason, by=by)
            self._noted[agent] = (kind, reason)
        except Exception as exc:
            # The change itself happened (Asterisk has it); only its figure is missing.
            log.warning("agent state not recorded", extra={
                "agent": agent, "kind": kind, "error": str(exc) or type(exc).__name__})

    async def restore(self) -> None:
        """Write this service's view back after Redis lost its data (it kept it in memory)."""
        if self._state:
            await self.redis.hset(self.key, mapping={a: "1" if v else "0"
                                                     for a, v in self._state.items()})

    def node_of(self, agent_id: str) -> str:
        return self.cfg.city(self.cfg.agent(agent_id).city).node

    def is_signed_in(self, agent_id: str) -> bool:
        if agent_id in self._state:
            return self._state[agent_id]
        return self.cfg.agent(agent_id).auto_login

    async def _set(self, agent_id: str, signed_in: bool, by: str) -> int:
        self.cfg.agent(agent_id)  # KeyError for unknown agents
        self._state[agent_id] = signed_in
        await self.redis.hset(self.key, agent_id, "1" if signed_in else "0")
        applier = self.apply_of(self.node_of(agent_id))
        changes = await applier(agent_id) if applier is not None else 0
        await self._note(agent_id, "signed_in" if signed_in else "signed_out", by=by)
        await self.redis.publish(self.events, json.dumps({
            "type": "presence", "at": time.time(), "agent": agent_id,
            "signed_in": signed_in, "by": by}))
        log.info("agent signed %s", "in" if signed_in else "out",
                 extra={"agent": agent_id, "by": by, "changes": changes})
        return changes

    async def sign_in(self, agent_id: str, *, by: str) -> int:
        return await self._set(agent_id, True, by)

    async def sign_out(self, agent_id: str, *, by: str) -> int:
        return await self._set(agent_id, False, by)

    async def pause(self, agent_id: str, paused: bool, *, reason: str = "", by: str) -> None:
        if not self.is_signed_in(agent_id):
            raise PresenceError("signed_out", f"agent {agent_id} is not signed in")
        if paused and reason not in PAUSE_REASONS:
            raise PresenceError("bad_reason", f"reason must be one of {', '.join(PAUSE_REASONS)}")
        try:
            ami = self.ami_of(self.node_of(agent_id))
        except KeyError:
            raise PresenceError("unknown_agent", f"no agent {agent_id}") from None
        try:
            await ami.queue_pause(interface(agent_id), paused, reason=reason if paused else "")
        except AmiError as exc:  # e.g. the agent left every queue
            raise PresenceError("unavailable", f"Asterisk refused: {exc}") from None
        await self._note(agent_id, "paused" if paused else "ready", reason if paused else "",
                         by=by)
        log.info("agent paused" if paused else "agent ready",
                 extra={"agent": agent_id, "reason": reason, "by": by})
