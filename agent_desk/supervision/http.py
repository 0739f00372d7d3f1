"""Supervisors: the wallboard's state, the agents with their skills, pausing an agent and
changing skills live (thin handlers over the wallboard, presence and the skills)."""

from __future__ import annotations

from aiohttp import web

from agent_desk.supervision.schemas import (
    AGENT_PAUSE,
    AGENT_SKILLS,
    AGENTS,
    SATISFACTION,
    WALLBOARD,
    AgentPauseBody,
    SkillsBody,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import SUPERVISORS, Route, actor
from common.errors import DomainError

ROUTES = [
    Route("GET", "/api/wallboard", "wallboard", SUPERVISORS, "The wallboard's full state",
          answer=WALLBOARD),
    Route("GET", "/api/wallboard/satisfaction", "wallboard_satisfaction", SUPERVISORS,
          "Today's 一键评价 figures (满意率) per city and queue, from the case records",
          answer=SATISFACTION),
    Route("GET", "/api/agents", "agents", SUPERVISORS, "Agents with state and skills",
          answer=AGENTS),
    Route("POST", "/api/agents/{agent}/pause", "agent_pause", SUPERVISORS,
          "Pause or unpause an agent", AgentPauseBody, answer=AGENT_PAUSE),
    Route("PUT", "/api/agents/{agent}/skills", "agent_skills", SUPERVISORS,
          "Change an agent's skills and levels (applied live)", SkillsBody,
          answer=AGENT_SKILLS),
]


class SupervisionHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_wallboard(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        return web.json_response(self.deps.board.snapshot())

    async def h_wallboard_satisfaction(self, request: web.Request, sess: Session, body: None
                                       ) -> web.StreamResponse:
        return web.json_response(await self.deps.board.satisfaction())

    async def h_agents(self, request: web.Request, sess: Session, body: None
                       ) -> web.StreamResponse:
        d = self.deps
        return web.json_response({"agents": [
            {**d.board.agents.get(a.id, {"agent": a.id, "name": a.name}),
             "signed_in": d.presence.is_signed_in(a.id),
             "skills": d.skills.of(a.id)} for a in d.cfg.agents],
            "skills": dict(d.cfg.skills)})

    def _known_agent(self, request: web.Request) -> str:
        agent = request.match_info["agent"]
        if agent not in {a.id for a in self.deps.cfg.agents}:
            raise DomainError("unknown_agent", f"no agent {agent}")
        return agent

    async def h_agent_pause(self, request: web.Request, sess: Session, body: AgentPauseBody
                            ) -> web.StreamResponse:
        agent = self._known_agent(request)
        await self.deps.presence.pause(agent, body.paused, reason=body.reason, by=sess.user)
        await self.deps.audit.record(actor(sess, request), "agent.pause", None, {
            "agent": agent, "paused": body.paused, "reason": body.reason})
        return web.json_response({"ok": True, "agent": agent, "paused": body.paused})

    async def h_agent_skills(self, request: web.Request, sess: Session, body: SkillsBody
                             ) -> web.StreamResponse:
        agent = self._known_agent(request)
        change = await self.deps.skills.change(agent, body.skills, by=sess.user)
        await self.deps.audit.record(actor(sess, request), "agent.skills", None, {
            "agent": agent, "before": change.before, "after": change.after})
        return web.json_response({"ok": True, "agent": agent, "before": change.before,
                                  "after": change.after, "applied": change.applied})
