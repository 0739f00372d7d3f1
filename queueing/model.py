"""Queues are derived from configuration: one per (pool, skill), where a pool is a city or the
province. Nobody hand-edits queues.conf: agents' skills and levels decide membership."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.config import PROVINCE_POOL, AgentConfig, Config

MAX_LEVEL = 5
# Each agent also has a queue of their own ("agent-1001"), only them as member: a repeat caller
# tries the agent who handled the earlier case there first (see queueing/router.py).
PERSONAL_POOL = "agent"


def queue_name(pool: str, skill: str) -> str:
    return f"{pool}-{skill}"


def split_queue(name: str) -> tuple[str, str]:
    pool, _, skill = name.partition("-")
    return pool, skill


def all_queues(cfg: Config) -> list[str]:
    pools = [c.id for c in cfg.cities] + [PROVINCE_POOL]
    return [queue_name(p, s) for p in pools for s in cfg.skills]


def fallback_queue(cfg: Config) -> str:
    return queue_name(PROVINCE_POOL, cfg.queueing.fallback_skill)


def personal_queue(agent_id: str) -> str:
    return f"{PERSONAL_POOL}-{agent_id}"


def is_personal_queue(name: str) -> bool:
    return name.startswith(PERSONAL_POOL + "-")


def relax_rule(skill: str) -> str:
    """The queuerules.conf rule that widens a skill queue to every level (rendered per skill)."""
    return f"relax-{skill}"


def max_penalty_for(level: int) -> int:
    """The highest penalty an agent of at least ``level`` has."""
    return penalty_for(level)


def interface(agent_id: str) -> str:
    return f"PJSIP/{agent_id}"


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
