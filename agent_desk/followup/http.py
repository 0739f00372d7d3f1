"""回访: the supervisors' list of follow-up calls and asking for one on any case (thin handlers
over the worker, agent_desk/followup/worker.py)."""

from __future__ import annotations

from aiohttp import web

from agent_desk.followup.schemas import FOLLOWUP, FOLLOWUPS, QUERY, FollowUpBody
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, FollowUps
from agent_desk.web.routes import SUPERVISORS, Route, actor
from common.errors import DomainError

ROUTES = [
    Route("GET", "/api/followups", "followups", SUPERVISORS, "回访 calls and their outcomes",
          query=("state",), answer=FOLLOWUPS, query_spec=QUERY),
    Route("POST", "/api/followups", "followup_request", SUPERVISORS,
          "Have the service call a case's caller for 回访", FollowUpBody, answer=FOLLOWUP),
]


class FollowUpsHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _worker(self) -> FollowUps:
        if self.deps.followups is None:
            raise DomainError("unavailable", "回访 calls are not running in this service")
        return self.deps.followups

    async def h_followups(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        scope = await self.deps.scope(sess)
        return web.json_response({"followups": await self._worker().tasks(
            state=request.query.get("state") or None, visible=scope.condition())})

    async def h_followup_request(self, request: web.Request, sess: Session,
                                 body: FollowUpBody) -> web.StreamResponse:
        d = self.deps
        worker = self._worker()
        await d.cases.visible(body.case, await d.scope(sess))  # need-to-know: 404 if not
        task = await worker.request(body.case, by=sess.user)
        await d.audit.record(actor(sess, request), "followup.request", body.case,
                             {"task": task["id"]})
        return web.json_response({"ok": True, "followup": task})
