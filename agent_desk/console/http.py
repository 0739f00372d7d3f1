"""The agent's console: state with the screen pop, sign in/out, ready/pause/wrap-up, and the
softphone's answer/hold/unhold and hangup (thin handlers over presence, live state, the
softphone channel and AMI)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from agent_desk.console.schemas import DONE, HANGUP, NAMES, SENT, SIGNED, STATE, PauseBody
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import ALL, Route, actor, agent_of, as_float, sees_numbers
from cases.models import Case
from common.errors import DomainError
from common.livekeys import LiveKeys

log = logging.getLogger(__name__)

AGENT = ("agent",)
ROUTES = [
    Route("GET", "/api/console/state", "console_state", AGENT,
          "The agent's state, signed-in flag and current call with its case (screen pop)",
          answer=STATE),
    Route("POST", "/api/console/signin", "console_signin", AGENT, "签入: join the queues",
          answer=SIGNED),
    Route("POST", "/api/console/signout", "console_signout", AGENT, "签出: leave the queues",
          answer=SIGNED),
    Route("POST", "/api/console/ready", "console_ready", AGENT, "示闲: ready for calls",
          answer=DONE),
    Route("POST", "/api/console/pause", "console_pause", AGENT, "示忙 with a reason",
          PauseBody, answer=DONE),
    Route("POST", "/api/console/wrapup", "console_wrapup", AGENT,
          "After-call work (paused until ready)", answer=DONE),
    Route("POST", "/api/console/answer", "console_answer", AGENT,
          "Answer the ringing call at the agent's softphone", answer=SENT),
    Route("POST", "/api/console/hold", "console_hold", AGENT, "Hold (softphone)", answer=SENT),
    Route("POST", "/api/console/unhold", "console_unhold", AGENT, "Unhold (softphone)",
          answer=SENT),
    Route("POST", "/api/console/hangup", "console_hangup", AGENT,
          "Hang up the agent's call (AMI)", answer=HANGUP),
    Route("GET", "/api/names", "display_names", ALL,
          "Display names from the configuration: cities, skills, the province, agents (the "
          "pages show names, not ids)", answer=NAMES),
]


class ConsoleHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps
        # Screen pops already audited, per (session, case): the page reloads the state on
        # every event of the call; one entry per session and case says it all.
        self._popped: dict[tuple[str, str], float] = {}

    async def h_console_state(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        d = self.deps
        agent = agent_of(sess)
        live = await d.live.agent(agent)
        out: dict[str, Any] = {
            "agent": agent, "signed_in": d.presence.is_signed_in(agent),
            "state": d.board.agents.get(agent, {}).get("state", live.get("state")),
            "reason": live.get("reason", ""), "since": float(live.get("since") or 0) or None,
            "call": None, "case": None, "now": time.time()}
        if d.monitoring is not None and d.monitoring.agent_sees:
            # The [supervision] policy lets the agent see a supervisor on the call (the mode,
            # not who).
            watched = d.monitoring.of_agent(agent)
            out["monitored"] = {"mode": watched.mode} if watched is not None else None
        cur = d.current_call(agent)
        if cur is not None:
            call_id, c = cur
            hot = await d.live.call(call_id)
            out["call"] = {"call_id": call_id, "queue": c.get("queue"),
                           "state": hot.get("state"),
                           "answered_at": as_float(hot.get("talking_at")),
                           "ringing_at": as_float(hot.get("ringing_at")),
                           "legs": [leg.snapshot() for leg in d.callcontrol.legs(call_id)]}
            case = await d.current_case(agent)
            if case is not None:
                try:
                    out["case"] = await self._screen_pop(case, sess)
                except DomainError as exc:
                    if exc.code != "not_found":
                        raise
                    # The call moved on between the two looks: no pop this time.
                else:
                    await self._audit_pop(request, sess, case.number)
        return web.json_response(out)

    async def _audit_pop(self, request: web.Request, sess: Session, number: str) -> None:
        key = (sess.sid, number)
        if key in self._popped:
            return
        await self.deps.audit.record(actor(sess, request), "case.screen_pop", number)
        self._popped[key] = time.time()
        if len(self._popped) > 20_000:  # forget the oldest half
            for k in sorted(self._popped, key=self._popped.__getitem__)[:10_000]:
                del self._popped[k]

    async def _screen_pop(self, case: Case, sess: Session) -> dict[str, Any]:
        d = self.deps
        # The same need-to-know as the case routes: the current call's case and its caller's
        # earlier cases are in the agent's scope; nothing else reaches the pop.
        scope = await d.scope(sess)
        detail = await d.cases.detail(case.number, clear=sees_numbers(d.web, sess),
                                      scope=scope)
        detail["earlier"] = await d.cases.earlier(case, scope)
        detail["links"] = [{"case": n, "reason": r} for n, r in await d.facts.links(case.number)]
        detail.pop("timeline", None)
        return detail

    async def h_display_names(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        cfg = self.deps.cfg
        return web.json_response({
            "province": cfg.province, "cities": {c.id: c.name for c in cfg.cities},
            "skills": dict(cfg.skills), "agents": {a.id: a.name for a in cfg.agents}})

    async def h_console_signin(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        changes = await self.deps.presence.sign_in(agent_of(sess), by=sess.user)
        return web.json_response({"ok": True, "signed_in": True, "changes": changes})

    async def h_console_signout(self, request: web.Request, sess: Session, body: None
                                ) -> web.StreamResponse:
        agent = agent_of(sess)
        if self.deps.current_call(agent) is not None:
            raise DomainError("on_call", "finish the call before signing out")
        changes = await self.deps.presence.sign_out(agent, by=sess.user)
        return web.json_response({"ok": True, "signed_in": False, "changes": changes})

    async def h_console_ready(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        await self.deps.presence.pause(agent_of(sess), False, reason="", by=sess.user)
        return web.json_response({"ok": True})

    async def h_console_pause(self, request: web.Request, sess: Session, body: PauseBody
                              ) -> web.StreamResponse:
        await self.deps.presence.pause(agent_of(sess), True, reason=body.reason, by=sess.user)
        return web.json_response({"ok": True})

    async def h_console_wrapup(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        await self.deps.presence.pause(agent_of(sess), True, reason="after_call_work",
                                       by=sess.user)
        return web.json_response({"ok": True})

    async def _softphone(self, agent: str, op: str) -> dict[str, Any]:
        rid = f"{agent}-{time.time_ns()}"
        channel = LiveKeys(self.deps.cfg.redis.prefix).softphone(agent)
        n = await self.deps.redis.publish(channel, json.dumps({"op": op, "id": rid}))
        if not n:
            raise DomainError("no_softphone", "the agent's softphone is not connected to the "
                                              "console (hotline softphone --answer console)")
        return {"ok": True, "sent": op, "id": rid}

    async def h_console_answer(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        return web.json_response(await self._softphone(agent_of(sess), "answer"))

    async def h_console_hold(self, request: web.Request, sess: Session, body: None
                             ) -> web.StreamResponse:
        agent = agent_of(sess)
        if self.deps.current_call(agent) is None:
            raise DomainError("no_call", "no call to hold")
        return web.json_response(await self._softphone(agent, "hold"))

    async def h_console_unhold(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        agent = agent_of(sess)
        if self.deps.current_call(agent) is None:
            raise DomainError("no_call", "no call to take off hold")
        return web.json_response(await self._softphone(agent, "unhold"))

    async def h_console_hangup(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        agent = agent_of(sess)
        ami = self.deps.ami_of(self.deps.presence.node_of(agent))
        rows = await ami.send_list({"Action": "CoreShowChannels"})
        channels = [str(m.get("Channel")) for m in rows
                    if str(m.get("Channel", "")).startswith(f"PJSIP/{agent}-")]
        if not channels:
            raise DomainError("no_call", "the agent has no call to hang up")
        for ch in channels:
            await ami.hangup(ch)
        log.info("console hangup", extra={"agent": agent, "channels": len(channels)})
        return web.json_response({"ok": True, "channels": len(channels)})
