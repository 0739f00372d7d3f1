"""Agent figures and the staffing forecast for supervisors and admins (thin handlers over
services.py): JSON for the wallboard and the reports page, CSV or XLSX exports. A city's
supervisor sees that city only; every read and export is audited."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from agent_desk.figures.services import figures_table, forecast_table, to_csv, to_xlsx
from agent_desk.web.auth import Session
from agent_desk.web.deps import AgentFiguresView, ConsoleDeps
from agent_desk.web.routes import DATE, OBJ, SUPERVISORS, Route, actor
from cases.loop.reports import EARLIEST, LATEST
from common.errors import DomainError

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
QUERY = {"period": {"enum": ["today", "day", "week", "month"]}, "date": DATE,
         "by": {"enum": ["agent", "team", "city"]},
         "format": {"enum": ["csv", "xlsx"]}, "lang": {"enum": ["zh-CN", "en"]}}
EXPORT_OK = {"description": "CSV or XLSX file", "content": {"text/csv": {}, XLSX: {}}}
PARAMS = ("period", "date", "by", "city", "lang")

ROUTES = [
    Route("GET", "/api/figures/agents", "agent_figures", SUPERVISORS,
          "Agent figures per agent, team or city, today or for a day, week or month (calls "
          "handled, average talk and wrap-up, paused by reason, occupancy, missed rings, "
          "transfers, 满意率, quality score), from the facts; within the asker's city; audited",
          query=PARAMS, query_spec=QUERY, answer=OBJ),
    Route("GET", "/api/figures/agents/export", "agent_figures_export", SUPERVISORS,
          "The same figures as CSV or XLSX; audited", query=(*PARAMS, "format"),
          query_spec=QUERY, ok=EXPORT_OK),
    Route("GET", "/api/figures/forecast", "staffing_forecast", SUPERVISORS,
          "A city's staffing forecast per half-hour: calls expected from the same weekday of "
          "the last weeks, agents Erlang C needs for the target, agents signed in; audited",
          query=("city", "date"), query_spec=QUERY, answer=OBJ),
    Route("GET", "/api/figures/forecast/export", "staffing_forecast_export", SUPERVISORS,
          "The same forecast as CSV or XLSX; audited", query=("city", "date", "format", "lang"),
          query_spec=QUERY, ok=EXPORT_OK),
]


class FiguresHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _desk(self) -> AgentFiguresView:
        if self.deps.figures is None:
            raise DomainError("not_available", "agent figures are not part of this service")
        return self.deps.figures

    async def _city(self, request: web.Request, sess: Session, *, required: bool
                    ) -> str | None:
        scope = await self.deps.scope(sess)
        if scope.role not in SUPERVISORS:
            raise DomainError("forbidden", "figures are for supervisors and admins")
        city = request.query.get("city") or None
        cities = {c.id for c in self.deps.cfg.cities}
        if scope.city is not None:
            if city not in (None, scope.city):
                raise DomainError("forbidden", f"your figures are {scope.city}'s only")
            return scope.city
        if city is not None and city not in cities:
            raise DomainError("invalid", f"city: unknown {city!r}")
        if city is None and required:
            return self.deps.cfg.cities[0].id
        return city

    @staticmethod
    def _day(request: web.Request) -> date | None:
        v = request.query.get("date")
        if not v:
            return None
        day = date.fromisoformat(v)  # its form was checked against DATE first
        if not EARLIEST <= day <= LATEST:
            raise DomainError("invalid", f"date: between {EARLIEST} and {LATEST}")
        return day

    async def _report(self, request: web.Request, sess: Session) -> dict[str, Any]:
        desk = self._desk()
        city = await self._city(request, sess, required=False)
        kind = request.query.get("period", "today")
        period = desk.period(kind, self._day(request))
        until = datetime.now(UTC) if kind == "today" else None
        return await desk.report(period, request.query.get("by", "agent"), city=city,
                                 lang=request.query.get("lang", "zh-CN"), until=until)

    async def h_agent_figures(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        report = await self._report(request, sess)
        await self.deps.audit.record(actor(sess, request), "figures.view", None, {
            "period": report["period"]["key"], "by": report["by"], "city": report["city"]})
        return web.json_response(report)

    async def h_agent_figures_export(self, request: web.Request, sess: Session, body: None
                                     ) -> web.StreamResponse:
        report = await self._report(request, sess)
        lang = request.query.get("lang", "zh-CN")
        fmt = request.query.get("format", "csv")
        await self.deps.audit.record(actor(sess, request), "figures.export", None, {
            "period": report["period"]["key"], "by": report["by"], "city": report["city"],
            "format": fmt})
        name = f"agents-{report['period']['key']}-{report['by']}"
        return await _file(figures_table(report, lang), name, fmt)

    async def _forecast(self, request: web.Request, sess: Session) -> dict[str, Any]:
        desk = self._desk()
        city = await self._city(request, sess, required=True)
        assert city is not None
        day = self._day(request) or desk.period("today").first
        return await desk.forecast(city, day)

    async def h_staffing_forecast(self, request: web.Request, sess: Session, body: None
                                  ) -> web.StreamResponse:
        doc = await self._forecast(request, sess)
        await self.deps.audit.record(actor(sess, request), "figures.view", None, {
            "forecast": doc["city"], "day": doc["day"]})
        scope = await self.deps.scope(sess)
        cities = [{"id": c.id, "name": c.name} for c in self.deps.cfg.cities
                  if scope.city in (None, c.id)]
        name = next((c["name"] for c in cities if c["id"] == doc["city"]), doc["city"])
        return web.json_response({**doc, "city_name": name, "cities": cities})

    async def h_staffing_forecast_export(self, request: web.Request, sess: Session,
                                         body: None) -> web.StreamResponse:
        doc = await self._forecast(request, sess)
        fmt = request.query.get("format", "csv")
        await self.deps.audit.record(actor(sess, request), "figures.export", None, {
            "forecast": doc["city"], "day": doc["day"], "format": fmt})
        lang = request.query.get("lang", "zh-CN")
        return await _file(forecast_table(doc, lang), f"forecast-{doc['city']}-{doc['day']}",
                           fmt)


async def _file(table: list[list[Any]], name: str, fmt: str) -> web.StreamResponse:
    headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "xlsx":
        data = await asyncio.to_thread(to_xlsx, table, name)
        return web.Response(body=data, content_type=XLSX, headers=headers)
    return web.Response(body=to_csv(table), content_type="text/csv", charset="utf-8",
                        headers=headers)
