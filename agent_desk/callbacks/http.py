"""Missed-call callbacks: the task list, calling the caller back from the agent's softphone
(AMI Originate) and the attempt's outcome (thin handlers over agent_desk/cases/store.py)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from agent_desk.callbacks.numbers import callback_number
from agent_desk.callbacks.schemas import CALLBACKS, QUERY, TASK, CallbackOutcomeBody
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import ALL, Route, actor, agent_of
from common.errors import DomainError

log = logging.getLogger(__name__)

CALLBACK_CONTEXT = "hotline-callback"  # asterisk-conf/extensions.conf.j2

ROUTES = [
    Route("GET", "/api/callbacks", "callbacks", ALL, "Missed-call callback tasks",
          query=("status", "city"), answer=CALLBACKS, query_spec=QUERY),
    Route("POST", "/api/callbacks/{id}/call", "callback_call", ("agent",),
          "Call the caller back from the agent's softphone (Originate)", answer=TASK),
    Route("POST", "/api/callbacks/{id}/outcome", "callback_outcome", ("agent", "supervisor"),
          "Record the outcome of the callback attempt", CallbackOutcomeBody, answer=TASK),
]


def _task_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise DomainError("not_found", "no such callback task") from None


class CallbacksHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_callbacks(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        return web.json_response({"callbacks": await self.deps.cases.callbacks(
            await self.deps.scope(sess), status=request.query.get("status") or None,
            city=request.query.get("city") or None)})

    async def h_callback_call(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        d = self.deps
        agent = agent_of(sess)
        task_id = _task_id(request)
        if d.current_call(agent) is not None:
            raise DomainError("on_call", "finish the current call first")
        scope = await d.scope(sess)
        task, number = await d.cases.begin_callback(task_id, agent, scope,
                                                    actor(sess, request))
        try:
            dialable = callback_number(number, d.cfg.callbacks.allowed_patterns,
                                       refused=[e.number for e in d.cfg.emergency_lines])
        except DomainError as refused:
            # Asterisk never hears of it; the attempt is on the task, which stays open.
            await d.cases.finish_callback(task_id, "number_not_allowed", by=agent, scope=scope)
            raise refused from None
        ring = d.web.callback_ring_s
        before, _, after = d.web.callback_dial.partition("{number}")
        try:
            # [hotline-callback] dials once the agent answers, the number filtered again.
            await d.ami_of(d.presence.node_of(agent)).originate(
                channel=f"PJSIP/{agent}", context=CALLBACK_CONTEXT, exten="s",
                caller_id=f"12345 <{d.cfg.transfers.hotline_number}>", timeout_s=ring,
                variables={"HOTLINE_CALLBACK": str(task_id),
                           "HOTLINE_CALLBACK_NUMBER": dialable,
                           "HOTLINE_CALLBACK_DIAL_BEFORE": before,
                           "HOTLINE_CALLBACK_DIAL_AFTER": after,
                           "HOTLINE_CALLBACK_RING": str(ring)})
        except Exception as exc:
            # Nothing half-done: the attempt is recorded as failed, the task stays open.
            await d.cases.finish_callback(task_id, "failed_to_dial", by=agent, scope=scope,
                                          note=str(exc)[:200])
            raise DomainError("unavailable", f"Asterisk could not place the call: {exc}"
                              ) from None
        await d.case_fact(task["case"], f"callback_{task['attempts']}",
                          {"agent": agent, "attempt": task["attempts"], "event": "dialing"})
        log.info("callback dialled", extra={"task": task_id, "agent": agent,
                                            "attempt": task["attempts"]})
        return web.json_response({"ok": True, "task": task})

    async def h_callback_outcome(self, request: web.Request, sess: Session,
                                 body: CallbackOutcomeBody) -> web.StreamResponse:
        d = self.deps
        task = await d.cases.finish_callback(_task_id(request), body.outcome, by=sess.user,
                                             scope=await d.scope(sess), note=body.note,
                                             actor=actor(sess, request))
        fact: dict[str, Any] = {"by": sess.user, "outcome": body.outcome}
        if body.note:  # the agent's words: encrypted on the timeline too
            fact["note_enc"] = d.personal.encrypt(body.note)
        await d.case_fact(task["case"], f"callback_{task['attempts']}_{body.outcome}"[:32],
                          fact)
        return web.json_response({"ok": True, "task": task})
