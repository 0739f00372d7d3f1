"""Agents' skills and levels, live.

At start every agent has the skills of the configuration. A supervisor's change (the console
calls ``AgentSkills.change``) is validated, kept in Redis (so a service restart during the shift
keeps it; ``reset`` goes back to the configuration) and applied at once to Asterisk: the
agent's node adds, re-penalises and removes queue memberships through AMI (MembershipSync).
Nobody edits queues.conf.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from common.config import Config
from common.errors import DomainError
from common.livekeys import LiveKeys
from common.queues import MAX_LEVEL
from common.replies import text_map

log = logging.getLogger(__name__)

Applier = Callable[[str], Awaitable[int]]


class SkillError(DomainError):
    """A change that cannot be applied, worded for the supervisor (code ``invalid``)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid", message)


@dataclass(frozen=True)
class SkillChange:
    agent_id: str
    before: dict[str, int]
    after: dict[str, int]
    applied: int  # queue membership changes made in Asterisk
    by: str


class AgentSkills:
    def __init__(self, cfg: Config, redis: Redis | None = None, prefix: str = "hotline"):
        self.cfg = cfg
        self.redis = redis
        self.key = f"{prefix}:skills"
        self.events = LiveKeys(prefix).events
        self._live: dict[str, dict[str, int]] = {}
        # node id -> applies one agent's membership on that node (MembershipSync.apply_agent)
        self.appliers: dict[str, Applier] = {}
        self._agent_node = {a.id: cfg.city(a.city).node for a in cfg.agents}

    async def load(self) -> None:
        """The shift's changes, from Redis (skills of unknown agents or skills are dropped)."""
        if self.redis is None:
            return
        raw = text_map(await self.redis.hgetall(self.key))
        for agent_id, doc in raw.items():
            try:
                self._live[agent_id] = self._validate(agent_id, json.loads(doc))
            except (SkillError, ValueError, TypeError) as exc:
                log.warning("stored skill change ignored", extra={"agent": agent_id,
                                                                  "error": str(exc)})

    async def restore(self) -> None:
        """Write the shift's changes back after Redis lost its data (they are in memory)."""
        if self.redis is not None and self._live:
            await self.redis.hset(self.key, mapping={a: json.dumps(s)
                                                     for a, s in self._live.items()})

    def of(self, agent_id: str) -> dict[str, int]:
        live = self._live.get(agent_id)
        return dict(live) if live is not None else dict(self.cfg.agent(agent_id).skills)

    def _validate(self, agent_id: str, skills: object) -> dict[str, int]:
        if agent_id not in self._agent_node:
            raise SkillError(f"unknown agent {agent_id!r}")
        if not isinstance(skills, dict):
            raise SkillError("skills must map skill names to levels")
        out: dict[str, int] = {}
        for skill, level in skills.items():
            if skill not in self.cfg.skills:
                raise SkillError(f"unknown skill {skill!r}")
            if isinstance(level, bool) or not isinstance(level, int) or not (
                    1 <= level <= MAX_LEVEL):
                raise SkillError(f"{skill}: level must be a whole number 1-{MAX_LEVEL}, "
                                 f"not {level!r}")
            out[str(skill)] = level
        return out

    async def change(self, agent_id: str, skills: dict[str, int], *, by: str) -> SkillChange:
        """Give an agent these skills (all of them: a skill left out is taken away)."""
        after = self._validate(agent_id, skills)
        before = self.of(agent_id)
        self._live[agent_id] = after
        if self.redis is not None:
            await self.redis.hset(self.key, agent_id, json.dumps(after))
            await self.redis.publish(self.events, json.dumps({
                "type": "skills", "at": time.time(), "agent": agent_id, "skills": after,
                "by": by}))
        applied = await self._apply(agent_id)
        log.info("agent skills changed", extra={"agent": agent_id, "before": before,
                                                "after": after, "by": by, "applied": applied})
        return SkillChange(agent_id, before, after, applied, by)

    async def reset(self, agent_id: str, *, by: str) -> SkillChange:
        """Back to the configuration's skills."""
        if agent_id not in self._agent_node:
            raise SkillError(f"unknown agent {agent_id!r}")
        before = self.of(agent_id)
        self._live.pop(agent_id, None)
        if self.redis is not None:
            await self.redis.hdel(self.key, agent_id)
        applied = await self._apply(agent_id)
        return SkillChange(agent_id, before, self.of(agent_id), applied, by)

    async def _apply(self, agent_id: str) -> int:
        applier = self.appliers.get(self._agent_node[agent_id])
        # A node that is down gets the change when it reconnects (membership reconcile).
        return await applier(agent_id) if applier is not None else 0
