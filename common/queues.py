"""Queue names: one queue per (pool, skill), where a pool is a city or the province, plus one
personal queue per agent. Asterisk's configuration, routing, membership, the live state and the
wallboard all name queues this way."""

from __future__ import annotations

from common.config import PROVINCE_POOL, Config

# Each agent also has a queue of their own ("agent-1001"), only them as member: a repeat caller
# tries the agent who handled the earlier case there first (see queueing/routing/router.py).
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


def interface(agent_id: str) -> str:
    return f"PJSIP/{agent_id}"


# Skill levels 1-5: a higher level, a lower penalty (Asterisk offers calls to penalty 0 first).
# Routing widens a waiting call by raising its maximum penalty; membership sets each member's.
MAX_LEVEL = 5


def penalty_for(level: int) -> int:
    """Higher skill level, lower penalty: Asterisk offers calls to penalty 0 first."""
    return MAX_LEVEL - level


def max_penalty_for(level: int) -> int:
    """The highest penalty an agent of at least ``level`` has."""
    return penalty_for(level)


def relax_rule(skill: str) -> str:
    """The queuerules.conf rule that widens a skill queue to every level (rendered per skill)."""
    return f"relax-{skill}"
