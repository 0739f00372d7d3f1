"""The presence room, wired: agents' sign-in and pause as the console sets them, and timed
wrap-up after a call (a worker on call facts, with or without the web console)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from agent_desk.presence.services import AgentPresence, StateLog
from agent_desk.presence.wrapup import AgentStates, WrapUpWorker
from common.config import Config
from telephony.ami import AmiClient


class PresencePlugin:
    def __init__(self, cfg: Config, redis: Redis, *, ami_of: Callable[[str], AmiClient],
                 apply_of: Callable[[str], Callable[[str], Awaitable[int]] | None],
                 states: AgentStates, log: StateLog | None = None):
        # ``apply_of``: a node's queue-membership update for one agent (None for no node);
        # ``states``: agents' live state as Asterisk reports it (the live state); ``log``:
        # where each sign-in and pause is kept as a fact (the agent figures).
        self.presence = AgentPresence(cfg, redis, cfg.redis.prefix, ami_of=ami_of,
                                      apply_of=apply_of, log=log)
        self.wrapup = WrapUpWorker(self.presence, states, seconds=cfg.web.wrapup_after_call_s)

    async def start(self) -> None:
        await self.presence.load()
        self.wrapup.start()

    async def stop(self) -> None:
        await self.wrapup.stop()
