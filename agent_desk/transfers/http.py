"""The console's transfer panel (thin handlers over call control)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_desk.transfers.schemas import DESTINATIONS, TRANSFER, TransferBody
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import ALL, Route, agent_of
from common.errors import DomainError
from common.queues import all_queues, split_queue

ROUTES = [
    Route("POST", "/api/console/transfer", "console_transfer", ("agent",),
          "Transfer panel: consult / three_way / blind / emergency a destination, or leave / "
          "cancel the leg in progress", TransferBody, answer=TRANSFER),
    Route("GET", "/api/console/destinations", "destinations", ALL,
          "Branch centers, emergency lines, colleagues (agent:<id>) and skill queues "
          "(queue:<city>-<skill>, another city's over the inter-node trunk)",
          answer=DESTINATIONS),
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
        cfg = self.deps.cfg
        cities = {c.id: c.name for c in cfg.cities}
        colleagues = [{"id": f"agent:{a.id}", "name": f"{a.id} {a.name}", "number": a.id,
                       "kind": "colleague", "category": cities.get(a.city, a.city)}
                      for a in cfg.agents if a.id != sess.agent]
        queues = [{"id": f"queue:{q}", "name": f"{cities.get(pool, pool)} · {cfg.skills[skill]}",
                   "number": "", "kind": "queue", "category": cfg.skills[skill]}
                  for q in all_queues(cfg) for pool, skill in [split_queue(q)]
                  if pool in cities]
        return web.json_response({"destinations": [
            *({"id": d.id, "name": d.name, "number": d.number, "kind": d.kind,
               "category": d.category} for d in cfg.destinations), *colleagues, *queues]})
