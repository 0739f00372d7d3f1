"""Webhooks for the admin: the deliveries (``?state=dead``: the dead-letter list), a retry,
the departments with webhooks, and a department's signing secret, shown once or rotated
(thin handlers over agent_desk/webhooks/services.py; 404 when the service runs without it)."""

from __future__ import annotations

from aiohttp import web

from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, WebhookDesk
from agent_desk.web.routes import Route, actor
from agent_desk.webhooks.schemas import DELIVERIES, DELIVERY, DEPARTMENTS, QUERY, SECRET
from common.errors import DomainError

ADMIN = ("admin",)
# A secret's answer is never kept by a browser or a proxy.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

ROUTES = [
    Route("GET", "/api/webhooks/deliveries", "webhook_deliveries", ADMIN,
          "Webhook deliveries, newest first (state=dead: the dead-letter list)",
          query=("state", "department", "case", "limit", "offset"), answer=DELIVERIES,
          query_spec=QUERY),
    Route("POST", "/api/webhooks/deliveries/{id}/retry", "webhook_retry", ADMIN,
          "Send a dead (or waiting) delivery again now, with its attempts counted afresh",
          answer=DELIVERY),
    Route("GET", "/api/webhooks/departments", "webhook_departments", ADMIN,
          "Departments with webhooks: URL, key generation, deliveries waiting and dead",
          answer=DEPARTMENTS),
    Route("POST", "/api/webhooks/departments/{department}/secret", "webhook_secret", ADMIN,
          "The department's signing secret, shown once (then: rotate)", answer=SECRET),
    Route("POST", "/api/webhooks/departments/{department}/rotate", "webhook_rotate", ADMIN,
          "A new signing secret for the department, shown now; the previous one signs too "
          "during [webhooks] rotation_grace_s", answer=SECRET),
]


class WebhooksHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _webhooks(self) -> WebhookDesk:
        if self.deps.webhooks is None:
            raise DomainError("not_available", "webhooks are not part of this service")
        return self.deps.webhooks

    async def h_webhook_deliveries(self, request: web.Request, sess: Session, body: None
                                   ) -> web.StreamResponse:
        q = request.query
        rows = await self._webhooks().deliveries(
            state=q.get("state") or None, department=q.get("department") or None,
            case=q.get("case") or None, limit=int(q.get("limit", "100")),
            offset=int(q.get("offset", "0")))
        return web.json_response({"deliveries": rows})

    async def h_webhook_retry(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        try:
            delivery_id = int(request.match_info["id"])
        except ValueError:
            delivery_id = 0
        if not 0 < delivery_id < 2**31:
            raise DomainError("not_found", "no such delivery")
        view = await self._webhooks().retry(delivery_id, actor(sess, request))
        return web.json_response({"ok": True, "delivery": view})

    async def h_webhook_departments(self, request: web.Request, sess: Session, body: None
                                    ) -> web.StreamResponse:
        return web.json_response({"departments": await self._webhooks().departments()})

    async def h_webhook_secret(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        shown = await self._webhooks().reveal(request.match_info["department"],
                                              actor(sess, request))
        return web.json_response(shown, headers=NO_STORE)

    async def h_webhook_rotate(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        shown = await self._webhooks().rotate(request.match_info["department"],
                                              actor(sess, request))
        return web.json_response(shown, headers=NO_STORE)
