"""Hot-topic alerts for supervisors (list with the cases behind them, acknowledge, merge the
burst's cases: 并单) and the suggested 事项 and department on a case's form (thin handlers
over agent_desk/insight/services.py).

Need-to-know: a supervisor sees the alerts of their city (the province: every city) and, in
them, only the cases their scope shows; the suggestion is for a case the asker may see."""

from __future__ import annotations

from aiohttp import web

from agent_desk.insight.schemas import (
    ALERT,
    ALERT_QUERY,
    ALERTS,
    CLASSIFIER,
    MERGED,
    SUGGEST_QUERY,
    SUGGESTION,
    MergeBody,
    SuggestBody,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, InsightDesk
from agent_desk.web.routes import SUPERVISORS, Route, actor
from cases.loop.states import Actor as LoopActor
from common.errors import DomainError

FORM_ROLES = ("agent", "supervisor")
ROUTES = [
    Route("GET", "/api/insight/alerts", "insight_alerts", SUPERVISORS,
          "Hot-topic alerts (open by default) with the cases behind each",
          query=("status", "limit"), answer=ALERTS, query_spec=ALERT_QUERY),
    Route("GET", "/api/insight/alerts/{id}", "insight_alert", SUPERVISORS,
          "One hot-topic alert with all its cases", answer=ALERT),
    Route("POST", "/api/insight/alerts/{id}/acknowledge", "insight_acknowledge", SUPERVISORS,
          "Acknowledge an alert (the first acknowledgement stays)", answer=ALERT),
    Route("POST", "/api/insight/alerts/{id}/merge", "insight_merge", SUPERVISORS,
          "并单: merge the burst's open cases into one (the earliest unless named), for one "
          "dispatch", MergeBody, answer=MERGED),
    Route("GET", "/api/insight/classifier", "insight_classifier", SUPERVISORS,
          "The suggestion classifier: held-back accuracy of each training against the "
          "keyword rules, and how often agents took the suggestions", answer=CLASSIFIER),
    Route("GET", "/api/cases/{number}/suggestion", "case_suggestion", FORM_ROLES,
          "Suggested 事项 and department for the case form, from its form, transcript and "
          "the text given", query=("text",), answer=SUGGESTION, query_spec=SUGGEST_QUERY),
    Route("POST", "/api/cases/{number}/suggestion", "case_suggest", FORM_ROLES,
          "The same, with the text being typed in the body (not in the address)",
          SuggestBody, answer=SUGGESTION),
]


class InsightHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    def _insight(self) -> InsightDesk:
        if self.deps.insight is None:
            raise DomainError("not_available", "hot topics and suggestions are not enabled")
        return self.deps.insight

    @staticmethod
    def _id(request: web.Request) -> int:
        raw = request.match_info["id"]
        if not raw.isdigit():
            raise DomainError("not_found", f"no alert {raw}")
        return int(raw)

    async def h_insight_alerts(self, request: web.Request, sess: Session, body: None
                               ) -> web.StreamResponse:
        scope = await self.deps.scope(sess)
        q = request.query
        alerts = await self._insight().alerts(
            city=scope.city, visible=scope.condition(), status=q.get("status", "open"),
            limit=int(q.get("limit", "50")))
        await self.deps.audit.record(actor(sess, request), "insight.alerts", None, {
            "alerts": [a["id"] for a in alerts],
            "cases": sum(len(a["case_list"]) for a in alerts)})
        return web.json_response({"alerts": alerts})

    async def h_insight_alert(self, request: web.Request, sess: Session, body: None
                              ) -> web.StreamResponse:
        scope = await self.deps.scope(sess)
        alert = await self._insight().alert(self._id(request), city=scope.city,
                                            visible=scope.condition())
        await self.deps.audit.record(actor(sess, request), "insight.alerts", None, {
            "alerts": [alert["id"]], "cases": len(alert["case_list"])})
        return web.json_response(alert)

    async def h_insight_acknowledge(self, request: web.Request, sess: Session, body: None
                                    ) -> web.StreamResponse:
        scope = await self.deps.scope(sess)
        alert = await self._insight().acknowledge(self._id(request), user=sess.user,
                                                  city=scope.city)
        await self.deps.audit.record(actor(sess, request), "insight.acknowledge", None, {
            "alert": alert["id"], "first": alert["acknowledged_by"] == sess.user})
        return web.json_response(alert)

    async def h_insight_merge(self, request: web.Request, sess: Session, body: MergeBody
                              ) -> web.StreamResponse:
        scope = await self.deps.scope(sess)
        out = await self._insight().merge(self._id(request), LoopActor(sess.user, sess.role),
                                          city=scope.city, visible=scope.condition(),
                                          into=body.into)
        if out["merged"]:
            await self.deps.audit.record_many(actor(sess, request), "insight.merge",
                                              out["merged"], {"alert": out["alert"],
                                                              "into": out["into"]})
        return web.json_response(out)

    async def h_insight_classifier(self, request: web.Request, sess: Session, body: None
                                   ) -> web.StreamResponse:
        return web.json_response(await self._insight().classifier_report())

    async def _suggest(self, request: web.Request, sess: Session, text: str
                       ) -> web.StreamResponse:
        scope = await self.deps.scope(sess)
        number = request.match_info["number"]
        out = await self._insight().suggest(number, text=text, visible=scope.condition(),
                                            user=sess.user)
        # What was suggested, never the text it was computed from.
        await self.deps.audit.record(actor(sess, request), "case.suggestion", number, {
            "matter": out["matter"], "source": out["source"], "typed": bool(text)})
        return web.json_response(out)

    async def h_case_suggestion(self, request: web.Request, sess: Session, body: None
                                ) -> web.StreamResponse:
        return await self._suggest(request, sess, request.query.get("text", ""))

    async def h_case_suggest(self, request: web.Request, sess: Session, body: SuggestBody
                             ) -> web.StreamResponse:
        return await self._suggest(request, sess, body.text)
