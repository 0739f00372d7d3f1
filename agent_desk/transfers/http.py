"""The console's transfer panel (thin handlers over call control)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_desk.transfers.schemas import DESTINATIONS, TRANSFER, TransferBody
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import ALL, Route, agent_of
from common.errors import DomainError

ROUTES = [
    Route("POST", "/api/console/transfer", "console_transfer", ("agent",),
          "Transfer panel: consult / three_way / blind / emergency a destination, or leave / "
          "cancel the leg in progress", TransferBody, answer=TRANSFER),
    Route("GET", "/api/console/destinations", "destinations", ALL,
          "Branch centers and emergency lines", answer=DESTINATIONS),
]


class TransfersHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_console_transfer(self, request: web.Request, sess: Session, body: TransferBody
                                 ) -> web.StreamResponse:
        agent = agent_of(sess)
        cur = self.deps.current_call(agent)
        if cur is None:
            raise DomainError("no_call", "the agent has no call to transfer")
        call_id = cur[0]
        cc = self.deps.callcontrol
        leg: dict[str, Any]
        if body.action == "leave":
            leg = (await cc.leave(call_id, agent)).snapshot()
        elif body.action == "cancel":
            leg = (await cc.cancel(call_id, agent)).snapshot()
        elif body.action == "three_way" and not body.destination:
            leg = (await cc.three_way(call_id, agent)).snapshot()
        elif not body.destination:
            raise DomainError("invalid", f"destination: required for {body.action}")
        else:
            leg = await cc.transfer(call_id=call_id, agent_id=agent, target=body.destination,
                                    mode=body.action)
        return web.json_response({"ok": True, "leg": leg})

    async def h_destinations(self, request: web.Request, sess: Session, body: None
                             ) -> web.StreamResponse:
        return web.json_response({"destinations": [
            {"id": d.id, "name": d.name, "number": d.number, "kind": d.kind,
             "category": d.category} for d in self.deps.cfg.destinations]})
