"""Supervisors: the wallboard's state, the agents with their skills, pausing an agent and
changing skills live, and 监听、耳语、强插 on an agent's call from the supervisor's own desk
phone (thin handlers over the wallboard, presence, the skills and telephony's monitoring).

Only the supervisor role monitors (an admin administers, an auditor reads the log), within
their city; every start, mode change and stop is in the audit log before it is answered."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_desk.supervision.schemas import (
    AGENT_PAUSE,
    AGENT_SKILLS,
    AGENTS,
    MONITOR,
    MONITORING,
    SATISFACTION,
    WALLBOARD,
    AgentPauseBody,
    MonitorBody,
    MonitorModeBody,
    SkillsBody,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, Monitoring
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
    Route("GET", "/api/monitoring", "monitoring", SUPERVISORS,
          "监听、耳语、强插: sessions now and lately, the user's desk phone, the policy",
          answer=MONITORING),
    Route("POST", "/api/monitoring", "monitoring_start", ("supervisor",),
          "Ring the supervisor's desk phone into an agent's call: listen (监听), whisper (耳语) "
          "or barge (强插)", MonitorBody, answer=MONITOR),
    Route("POST", "/api/monitoring/{id}/mode", "monitoring_mode", ("supervisor",),
          "Change the mode without hanging up", MonitorModeBody, answer=MONITOR),
    Route("POST", "/api/monitoring/{id}/stop", "monitoring_stop", ("supervisor",),
          "Hang up the supervisor's phone", answer=MONITOR),
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

    # -- 监听、耳语、强插 ----------------------------------------------------------------

    def _monitoring(self) -> Monitoring:
        if self.deps.monitoring is None:
            raise DomainError("not_available", "monitoring is not part of this service")
        return self.deps.monitoring

    async def h_monitoring(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        m = self._monitoring()
        phone = self.deps.cfg.supervisor_of_user(sess.user)
        city = (await self.deps.scope(sess)).city
        agents_city = {a.id: a.city for a in self.deps.cfg.agents}
        sessions = [s.snapshot() for s in m.recent()
                    if city is None or agents_city.get(s.agent_id) == city]
        return web.json_response({"sessions": sessions, "agent_sees": m.agent_sees,
                                  "phone": phone.id if phone else None})

    async def h_monitoring_start(self, request: web.Request, sess: Session, body: MonitorBody
                                 ) -> web.StreamResponse:
        m = self._monitoring()
        try:
            agent = self.deps.cfg.agent(body.agent)
        except KeyError:
            raise DomainError("unknown_agent", f"no agent {body.agent}") from None
        city = (await self.deps.scope(sess)).city
        if city is not None and agent.city != city:
            raise DomainError("forbidden", f"agent {agent.id} works in another city")
        phone = self.deps.cfg.supervisor_of_user(sess.user)
        if phone is None:
            raise DomainError("no_phone", "no desk phone is configured for you "
                                          "([[supervisors]] user)")
        session = await m.join(agent.id, phone=phone.id, supervisor=sess.user, mode=body.mode)
        await self._audit(request, sess, "monitoring.start", session, phone=phone.id)
        return web.json_response({"ok": True, "session": session.snapshot()})

    async def h_monitoring_mode(self, request: web.Request, sess: Session,
                                body: MonitorModeBody) -> web.StreamResponse:
        m = self._monitoring()
        before = getattr(m.session(request.match_info["id"]), "mode", None)
        session = await m.switch(request.match_info["id"], body.mode, supervisor=sess.user)
        await self._audit(request, sess, "monitoring.mode", session, before=before)
        return web.json_response({"ok": True, "session": session.snapshot()})

    async def h_monitoring_stop(self, request: web.Request, sess: Session, body: None
                                ) -> web.StreamResponse:
        session = await self._monitoring().leave(request.match_info["id"], supervisor=sess.user)
        await self._audit(request, sess, "monitoring.stop", session)
        return web.json_response({"ok": True, "session": session.snapshot()})

    async def _audit(self, request: web.Request, sess: Session, action: str, session: Any,
                     **more: Any) -> None:
        await self.deps.audit.record(actor(sess, request), action, session.case_number, {
            "agent": session.agent_id, "mode": session.mode, "session": session.session_id,
            "call_id": session.call_id, **more})
