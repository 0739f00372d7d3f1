"""Who is a member of which queue, with which penalty: derived from configuration and the
agents' live skills. Nobody hand-edits queues.conf: agents' skills and levels decide membership."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import PROVINCE_POOL, AgentConfig, Config
from common.queues import interface, penalty_for, personal_queue, queue_name


@dataclass(frozen=True, order=True)
class Membership:
    queue: str
    agent_id: str
    penalty: int

    @property
    def interface(self) -> str:
        return interface(self.agent_id)


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
