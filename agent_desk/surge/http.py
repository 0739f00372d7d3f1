"""Surge handling for supervisors: status, proposals, applying them, returning agents home
and the moves' audit (thin handlers over queueing/surge/manager.py; 404 when the service
runs without it)."""

from __future__ import annotations

from aiohttp import web

from agent_desk.surge.schemas import (
    MOVES,
    QUERY,
    SurgeApplyBody,
    SurgeProposalBody,
    SurgeReturnBody,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, Surge
from agent_desk.web.routes import SUPERVISORS, Route
from common.errors import DomainError

ROUTES = [
    Route("GET", "/api/surge", "surge", SUPERVISORS, "Surge status (when available)"),
    Route("POST", "/api/surge/proposal", "surge_proposal", SUPERVISORS,
          "Propose agents to lend to a city or queue", SurgeProposalBody),
    Route("POST", "/api/surge/apply", "surge_apply", SUPERVISORS, "Apply a proposal",
          SurgeApplyBody),
    Route("POST", "/api/surge/return", "surge_return", SUPERVISORS,
          "Return borrowed agents home", SurgeReturnBody),
    Route("GET", "/api/surge/moves", "surge_moves", SUPERVISORS, "Audit of agent moves",
          query=("limit",), answer=MOVES, query_spec=QUERY),
]


class SurgeHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _surge(self) -> Surge:
        if self.deps.surge is None:
            raise DomainError("not_available", "surge handling is not part of this service")
        return self.deps.surge

    async def h_surge(self, request: web.Request, sess: Session, body: None
                      ) -> web.StreamResponse:
        return web.json_response(await self._surge().status())

    async def h_surge_proposal(self, request: web.Request, sess: Session,
                               body: SurgeProposalBody) -> web.StreamResponse:
        return web.json_response(await self._surge().proposal(body.target))

    async def h_surge_apply(self, request: web.Request, sess: Session, body: SurgeApplyBody
                            ) -> web.StreamResponse:
        return web.json_response(await self._surge().apply(body.proposal_id, by=sess.user))

    async def h_surge_return(self, request: web.Request, sess: Session, body: SurgeReturnBody
                             ) -> web.StreamResponse:
        return web.json_response(await self._surge().return_agents(body.agent_ids,
                                                                   by=sess.user))

    async def h_surge_moves(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        surge = self._surge()
        return web.json_response({"moves": await surge.moves(
            int(request.query.get("limit", "100")))})
