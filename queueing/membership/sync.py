"""Queue membership follows agents' skills: computed from configuration (and, later, sign-ins
and surges), applied to Asterisk through AMI, and reconciled after every (re)connect so Asterisk
always ends up with exactly the desired members and penalties."""

from __future__ import annotations

import logging
from collections.abc import Callable

from common import events as ev
from common.config import Config
from common.facts import agent_of
from common.queues import interface
from queueing.membership.model import Membership, desired_membership
from telephony.ami import AmiClient, AmiError

log = logging.getLogger(__name__)


class MembershipSync:
    def __init__(self, cfg: Config, node: str, ami: Callable[[], AmiClient],
                 signed_in: Callable[[str], bool] | None = None,
                 skills_of: Callable[[str], dict[str, int]] | None = None):
        self.cfg = cfg
        self.node = node
        self._ami = ami
        # Whether an agent is signed in (the console's sign-in state); config's auto_login
        # decides until the console says otherwise.
        self.signed_in = signed_in or (lambda agent_id: self.cfg.agent(agent_id).auto_login)
        # An agent's live skills (queueing.routing.skills.AgentSkills.of); the config's otherwise.
        self.skills_of = skills_of
        self.applied = 0

    def desired_of(self, agent_id: str) -> set[Membership]:
        agent = self.cfg.agent(agent_id)
        if not self.signed_in(agent.id):
            return set()
        skills = self.skills_of(agent.id) if self.skills_of is not None else None
        return set(desired_membership(self.cfg, agent, skills))

    def desired(self) -> set[Membership]:
        out: set[Membership] = set()
        for agent in self.cfg.agents_of(self.node):
            out.update(self.desired_of(agent.id))
        return out

    async def apply_agent(self, agent_id: str) -> int:
        """Make one agent's memberships in Asterisk match the desired ones now (a skill change,
        a sign-in): reads that member's queues from Asterisk, then adds, re-penalises and
        removes. Returns the number of changes."""
        ami = self._ami()
        status = await ami.send_list({"Action": "QueueStatus", "Member": interface(agent_id)})
        current = []
        for m in status:
            if m.get("Event") == "QueueMember":
                try:
                    member = ev.parse_member(m)
                except ev.MissingField:
                    continue
                if agent_of(member.interface) == agent_id:
                    current.append(member)
        return await self._reconcile({m for m in self.desired_of(agent_id)}, current,
                                     only={agent_id})

    async def on_event(self, event: ev.DomainEvent) -> None:
        if isinstance(event, ev.Connected) and event.snapshot is not None:
            await self.reconcile(event.snapshot.members)

    async def reconcile(self, current: list[ev.QueueMember]) -> int:
        """Add, re-penalise and remove members until Asterisk matches the desired state."""
        return await self._reconcile(self.desired(), current)

    async def _reconcile(self, desired: set[Membership], current: list[ev.QueueMember],
                         only: set[str] | None = None) -> int:
        ami = self._ami()
        want = {(m.queue, m.agent_id): m for m in desired}
        have: dict[tuple[str, str], ev.QueueMember] = {}
        for m in current:
            agent = agent_of(m.interface)
            if agent is not None and (only is None or agent in only):
                have[(m.queue, agent)] = m
        changes = 0
        for key, wanted in sorted(want.items()):
            cur = have.get(key)
            try:
                if cur is None:
                    await ami.queue_add(wanted.queue, wanted.interface, penalty=wanted.penalty,
                                        member_name=wanted.agent_id)
                    changes += 1
                elif cur.penalty != wanted.penalty:
                    await ami.queue_penalty(wanted.interface, wanted.penalty, queue=wanted.queue)
                    changes += 1
            except AmiError as exc:
                log.warning("queue membership not applied", extra={
                    "queue": wanted.queue, "agent": wanted.agent_id, "error": str(exc)})
        for key, cur in have.items():
            if key not in want and key[1] in {a.id for a in self.cfg.agents}:
                try:
                    await ami.queue_remove(cur.queue, cur.interface)
                    changes += 1
                except AmiError as exc:
                    log.warning("stale queue member not removed", extra={
                        "queue": cur.queue, "interface": cur.interface, "error": str(exc)})
        self.applied += changes
        if changes:
            log.info("queue membership reconciled", extra={"node": self.node,
                                                           "changes": changes})
        return changes
