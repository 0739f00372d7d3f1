"""Quality inspection (质检) over HTTP: inspectors (qa) and supervisors read a day's sample
and score a sampled call with the checklist (the case page's recording player and transcript
beside the form: /quality); an agent reads their own scores and comments. Within the asker's
city; every read and score is audited."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from aiohttp import web
from pydantic import Field, StrictInt, StrictStr

from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, QualityView
from agent_desk.web.routes import DATE, OBJ, QA, SUPERVISORS, Body, Route, actor, agent_of
from cases.loop.reports import EARLIEST, LATEST
from common.errors import DomainError

INSPECTORS = (*QA, *SUPERVISORS)


class ScoreBody(Body):
    # Checklist item id -> points given (every item of the configured checklist).
    items: dict[Annotated[str, Field(max_length=32)], Annotated[StrictInt, Field(ge=0, le=100)]]
    comment: Annotated[StrictStr, Field(max_length=2000)] = ""


ROUTES = [
    Route("GET", "/api/quality/samples", "qa_samples", INSPECTORS,
          "A finished day's 质检 sample (drawn on first reading: random calls per agent plus "
          "long calls, unsatisfied ratings, complaints, transfers to emergency lines) with "
          "their scores; within the asker's city; audited", query=("date", "city"),
          query_spec={"date": DATE}, answer=OBJ),
    Route("GET", "/api/quality/samples/{id}", "qa_sample", INSPECTORS,
          "One sampled call, its score and the checklist", answer=OBJ),
    Route("PUT", "/api/quality/samples/{id}/score", "qa_score", INSPECTORS,
          "Score a sampled call: points per checklist item and a comment for the agent "
          "(scoring again replaces it); audited", ScoreBody, answer=OBJ),
    Route("GET", "/api/quality/mine", "qa_mine", ("agent",),
          "The signed-in agent's own scored calls: score, items, comment", answer=OBJ),
]


class QualityHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _desk(self) -> QualityView:
        if self.deps.quality is None:
            raise DomainError("not_available", "quality inspection is not part of this service")
        return self.deps.quality

    async def _city(self, sess: Session) -> str | None:
        scope = await self.deps.scope(sess)
        if scope.role not in INSPECTORS:  # disabled or changed since signing in
            raise DomainError("forbidden", "quality inspection is for inspectors")
        return scope.city

    @staticmethod
    def _id(request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise DomainError("not_found", "no such sample") from None

    async def h_qa_samples(self, request: web.Request, sess: Session, body: None
                           ) -> web.StreamResponse:
        desk = self._desk()
        city = await self._city(sess)
        asked = request.query.get("city") or None
        if asked is not None:
            if city is not None and asked != city:
                raise DomainError("forbidden", f"your samples are {city}'s only")
            city = asked
        v = request.query.get("date")
        day = date.fromisoformat(v) if v else date.fromordinal(desk.today().toordinal() - 1)
        if not EARLIEST <= day <= LATEST:
            raise DomainError("invalid", f"date: between {EARLIEST} and {LATEST}")
        samples = await desk.samples(day, city=city)
        await self.deps.audit.record(actor(sess, request), "qa.samples", None, {
            "day": day.isoformat(), "city": city, "samples": len(samples)})
        return web.json_response({"day": day.isoformat(), "city": city, "samples": samples,
                                  "checklist": desk.checklist()})

    async def h_qa_sample(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        doc = await self._desk().sample(self._id(request), city=await self._city(sess))
        return web.json_response(doc)

    async def h_qa_score(self, request: web.Request, sess: Session, body: ScoreBody
                         ) -> web.StreamResponse:
        doc = await self._desk().score(self._id(request), dict(body.items), body.comment,
                                       actor(sess, request), city=await self._city(sess))
        return web.json_response({"ok": True, "sample": doc})

    async def h_qa_mine(self, request: web.Request, sess: Session, body: None
                        ) -> web.StreamResponse:
        agent = agent_of(sess)
        scores = await self._desk().mine(agent)
        await self.deps.audit.record(actor(sess, request), "qa.mine", None,
                                     {"agent": agent, "scores": len(scores)})
        return web.json_response({"agent": agent, "scores": scores})
