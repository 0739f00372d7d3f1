"""Timed wrap-up (事后处理) as a worker on call facts: after every answered call the agent is
paused with reason ``after_call_work`` for ``seconds``, then ready again unless the agent (or a
supervisor) changed the state meanwhile. Runs with or without the web console.

Fed by the case store once a fact is on its case (``CaseStore.after_apply``). Only facts heard
as they happen (sources ``live`` and ``resync``) count: a call rebuilt from CEL ended while the
service was away, and its agent has long moved on."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from common.facts import CallFact
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

AFTER_CALL_WORK = "after_call_work"
HEARD_LIVE = ("live", "resync")
# Calls answered and not ended yet, remembered at most (a call whose end was never heard
# must not grow this for good).
OPEN_CALLS = 100_000


class Presence(Protocol):
    """Agents' sign-in and pause (agent_desk.presence.services.AgentPresence)."""

    def is_signed_in(self, agent_id: str) -> bool: ...

    async def pause(self, agent_id: str, paused: bool, *, reason: str = "",
                    by: str) -> None: ...


class AgentStates(Protocol):
    """Agents' live state as Asterisk reports it (telephony.live.state.LiveState)."""

    async def agent(self, agent_id: str) -> dict[str, str]: ...


class WrapUpWorker:
    def __init__(self, presence: Presence, states: AgentStates, *, seconds: float):
        self.presence = presence
        self.states = states
        self.seconds = seconds  # 0: no timed wrap-up
        self.wrapups = 0
        self._answered: dict[str, str] = {}  # call id -> the agent who answered it
        self._timers: dict[str, asyncio.Task[None]] = {}  # agent -> wrap-up under way
        self._running = False

    async def on_fact(self, fact: CallFact) -> None:
        """A fact now on its case (a CaseStore.after_apply hook)."""
        if fact.source not in HEARD_LIVE:
            return
        if fact.kind == "answered" and fact.data.get("agent"):
            self._answered[fact.call_id] = str(fact.data["agent"])
            if len(self._answered) > OPEN_CALLS:
                del self._answered[next(iter(self._answered))]
        elif fact.kind in ("ended", "orphaned"):
            agent = self._answered.pop(fact.call_id, None)
            if agent is not None and self._running and self.seconds:
                self._begin(agent)

    def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False
        timers, self._timers = list(self._timers.values()), {}
        await cancel_and_wait(timers, what="wrap-up timers")

    def _begin(self, agent: str) -> None:
        # A new call's wrap-up replaces the one still running: its timer would end this one.
        previous = self._timers.pop(agent, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.create_task(self._wrap_up(agent), name=f"wrap-up-{agent}")
        self._timers[agent] = task
        task.add_done_callback(lambda t: self._forget(agent, t))

    def _forget(self, agent: str, task: asyncio.Task[None]) -> None:
        if self._timers.get(agent) is task:
            del self._timers[agent]

    async def _wrap_up(self, agent: str) -> None:
        if not self.presence.is_signed_in(agent):
            return
        try:
            await self.presence.pause(agent, True, reason=AFTER_CALL_WORK, by="wrap-up")
            self.wrapups += 1
            await asyncio.sleep(self.seconds)  # the wrap-up time itself
            live = await self.states.agent(agent)
            if live.get("paused") == "1" and live.get("reason") == AFTER_CALL_WORK:
                await self.presence.pause(agent, False, by="wrap-up")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("wrap-up not applied",
                        extra={"agent": agent, "error": str(exc) or type(exc).__name__})
