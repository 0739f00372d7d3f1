"""Loop reports for supervisors and admins: the figures per department or city for a day, week
or month, as JSON for the page and as CSV or XLSX (thin handlers over cases/loop/reports.py
and exports.py). A supervisor of a city gets that city's figures only (asking for another
city is refused); a province supervisor any city's or all. Every report served is audited."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, cast

from aiohttp import web

from agent_desk.reports.exports import to_csv, to_xlsx
from agent_desk.reports.schemas import (
    EXPORT_OK,
    LOOP_REPORT,
    REPORT_PARAMS,
    REPORT_QUERY,
    XLSX,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, LoopReportsDesk
from agent_desk.web.routes import SUPERVISORS, Route, actor
from cases.loop.reports import GroupBy, PeriodKind, Query
from common.errors import DomainError

ROUTES = [
    Route("GET", "/api/reports/loop", "loop_report", SUPERVISORS,
          "The case loop's figures per department or city for a day, week or month (受理量, "
          "按时签收率, 按时办结率, 满意率, 解决率, 重办率, 重复诉求率, 平均办理时长); within the "
          "asker's city; audited", query=REPORT_PARAMS, answer=LOOP_REPORT,
          query_spec=REPORT_QUERY),
    Route("GET", "/api/reports/loop/export", "loop_report_export", SUPERVISORS,
          "The same report as CSV or XLSX (spreadsheet formulas neutralised); audited",
          query=(*REPORT_PARAMS, "format", "lang"), query_spec=REPORT_QUERY, ok=EXPORT_OK),
]


class ReportsHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _reports(self) -> LoopReportsDesk:
        if self.deps.reports is None:
            raise DomainError("not_available", "loop reports are not part of this service")
        return self.deps.reports

    async def _query(self, request: web.Request, sess: Session
                     ) -> tuple[Query, list[dict[str, str]]]:
        """The report asked for, within the asker's city; the cities they may choose."""
        d, q = self.deps, request.query
        reports = self._reports()
        scope = await d.scope(sess)
        if scope.role not in SUPERVISORS:  # a user disabled or changed since signing in
            raise DomainError("forbidden", "reports are for supervisors and admins")
        cities = {c.id: c.name for c in d.cfg.cities}
        city = q.get("city") or None
        if scope.city is not None:
            if city not in (None, scope.city):
                raise DomainError("forbidden", f"your reports are {scope.city}'s only")
            city = scope.city
            cities = {scope.city: cities.get(scope.city, scope.city)}
        elif city is not None and city not in cities:
            raise DomainError("invalid", f"city: unknown {city!r}")
        try:
            day = date.fromisoformat(q["date"]) if q.get("date") else None
            # (period and by are checked against the route's description first)
            period = reports.period(cast(PeriodKind, q.get("period", "week")), day)
        except ValueError as exc:
            raise DomainError("invalid", f"date: {exc}") from None
        by = cast(GroupBy, q.get("by", "department"))
        return (Query(period, by, city, q.get("department") or None),
                [{"id": k, "name": v} for k, v in cities.items()])

    async def _audit(self, request: web.Request, sess: Session, action: str, query: Query,
                     **more: Any) -> None:
        await self.deps.audit.record(actor(sess, request), action, None, {
            "period": query.period.key, "by": query.by, "city": query.city,
            "department": query.department, **more})

    async def h_loop_report(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        query, cities = await self._query(request, sess)
        report = await self._reports().report(query)
        await self._audit(request, sess, "report.view", query)
        return web.json_response({**report.as_dict(), "cities": cities})

    async def h_loop_report_export(self, request: web.Request, sess: Session, body: None
                                   ) -> web.StreamResponse:
        query, _ = await self._query(request, sess)
        fmt = request.query.get("format", "csv")
        lang = request.query.get("lang", "zh-CN")
        report = await self._reports().report(query)
        await self._audit(request, sess, "report.export", query, format=fmt)
        name = f"loop-{query.period.key}-{query.by}{'-' + query.city if query.city else ''}"
        headers = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
        if fmt == "xlsx":
            data = await asyncio.to_thread(to_xlsx, report, lang)
            return web.Response(body=data, content_type=XLSX, headers=headers)
        return web.Response(body=to_csv(report, lang), content_type="text/csv",
                            charset="utf-8", headers=headers)
