"""Queues are derived from configuration: one per (pool, skill), where a pool is a city or the
province. Nobody hand-edits queues.conf: agents' skills and levels decide membership."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import PROVINCE_POOL, AgentConfig, Config
from common.queues import interface, personal_queue, queue_name

MAX_LEVEL = 5


def relax_rule(skill: str) -> str:
    """The queuerules.conf rule that widens a skill queue to every level (rendered per skill)."""
    return f"relax-{skill}"


def max_penalty_for(level: int) -> int:
    """The highest penalty an agent of at least ``level`` has."""
    return penalty_for(level)


@dataclass(frozen=True, order=True)
class Membership:
    queue: str
    agent_id: str
    penalty: int

    @property
    def interface(self) -> str:
        return interface(self.agent_id)


def penalty_for(level: int) -> int:
    """Higher skill level, lower penalty: Asterisk offers calls to penalty 0 first."""
    return MAX_LEVEL - level


def desired_membership(cfg: Config, agent: AgentConfig,
                       skills: dict[str, int] | None = None) -> list[Membership]:
    """Queues and penalties for a signed-in agent; ``skills`` are the live skills when a
    supervisor changed them (the config's otherwise)."""
    skills = agent.skills if skills is None else skills
    out: dict[str, Membership] = {}
    q = personal_queue(agent.id)
    out[q] = Membership(q, agent.id, 0)
    for skill, level in skills.items():
        for pool in (agent.city, PROVINCE_POOL):
            q = queue_name(pool, skill)
            out[q] = Membership(q, agent.id, penalty_for(level))
    if "general" in skills:
        for pool in agent.pools:
            q = queue_name(pool, "general")
            out.setdefault(q, Membership(q, agent.id, penalty_for(skills["general"])))
    return sorted(out.values())


@dataclass(frozen=True)
class EarlierCase:
    """A caller's open case from the last days: what makes them a repeat caller."""

    number: str
    case_id: int
    agent_id: str | None
    at: float  # when it was answered (epoch seconds)


# Registered callers who go first (绿色通道).
GREEN_CHANNEL = ("elderly", "disabled")
