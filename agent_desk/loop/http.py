"""The hotline's side of the case loop (工单流转): the 诉求类型 and 事项 tree, the departments,
a case's loop and what the hotline does to it (classify, finish on the phone, dispatch,
review the reply, 回访, close, reopen, merge, decide an extension, note), and the
supervisors' 督办 list. Thin handlers over the case loop (cases/loop/store.py).

Who may do what in which state is decided by ``cases.loop.states.decide`` alone: a route is
open to the hotline's roles and the refusal comes from there (403 forbidden, 409 conflict,
422 invalid). Every case is read and changed within the asker's need-to-know
(``ConsoleDeps.scope``): a case outside it answers 404. Every read is audited, every change
with its audit entry in the change's own transaction. A change may carry an
``Idempotency-Key`` header: a retry with the same key changes nothing and answers the case as
it is."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from agent_desk.access import Scope
from agent_desk.loop.schemas import (
    DEPARTMENTS,
    LOOP,
    SUGGESTION,
    SUPERVISION,
    SUPERVISION_QUERY,
    TAXONOMY,
    ClassifyBody,
    DispatchBody,
    ExtensionDecisionBody,
    FollowUpBody,
    MergeBody,
    ReasonBody,
    ReviewBody,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import CaseLoopDesk, ConsoleDeps
from agent_desk.web.routes import ALL, SUPERVISORS, Route, actor
from cases.loop.lists import SupervisionFilter
from cases.loop.states import CLOSED, HOTLINE, Command
from cases.loop.states import Actor as LoopActor
from cases.loop.store import Details, LoopChange
from common.errors import DomainError

# Who reads the loop: the hotline, and a department its own cases (without the free text).
READERS = (*ALL, "department")
IDEM = ("Idempotency-Key",)
REPEATS = ("repeat_caller", "repeat_place")
FILTERS = ("light", "supervised", "department", "city", "state")


def _action(name: str, summary: str, body: type[Any]) -> Route:
    return Route("POST", f"/api/cases/{{number}}/loop/{name}", f"loop_{name}", ALL, summary,
                 body, answer=LOOP, optional_headers=IDEM)


ROUTES = [
    Route("GET", "/api/taxonomy", "taxonomy", READERS,
          "诉求类型 and the 事项 tree, with their Chinese names", answer=TAXONOMY),
    Route("GET", "/api/departments", "departments", READERS,
          "The 承办单位 directory (active departments; city: that city's and the province's)",
          query=("city",), answer=DEPARTMENTS),
    Route("GET", "/api/cases/{number}/loop", "case_loop", READERS,
          "A case's loop: state, classification, dispatches, time limits, 红黄灯, timeline "
          "(replies and reasons for the hotline's roles only)", answer=LOOP),
    Route("GET", "/api/cases/{number}/loop/suggestion", "case_loop_suggestion", ALL,
          "The department a dispatch of this case is suggested to (its 事项 in its city) and "
          "the repeat complaints linked to it", answer=SUGGESTION),
    _action("classify", "分类: 诉求类型, 事项, district and address", ClassifyBody),
    _action("finish_direct", "直接办结: answered on the phone, nothing to dispatch", ReasonBody),
    _action("dispatch", "派单 / 改派: to a 主办 department and any 协办 departments",
            DispatchBody),
    _action("review", "审核: accept the lead department's reply or send it back", ReviewBody),
    _action("follow_up", "回访: the caller's answers (reached, resolved, satisfaction)",
            FollowUpBody),
    _action("close", "结案 outside 回访 (supervisors)", ReasonBody),
    _action("reopen", "重办: a closed case dispatched again (supervisors)", ReasonBody),
    _action("merge", "并单: this case lives on in another one", MergeBody),
    _action("decide_extension", "延期审批: grant or refuse the extension asked (supervisors)",
            ExtensionDecisionBody),
    _action("note", "A note on the case's loop", ReasonBody),
    Route("GET", "/api/supervision", "supervision", SUPERVISORS,
          "督办: open cases by 红黄灯, department, city and state (most overdue first), the "
          "extension requests and the replies waiting for a decision",
          query=(*FILTERS, "limit", "offset"),
          answer=SUPERVISION, query_spec=SUPERVISION_QUERY),
]


class LoopHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    @property
    def loop(self) -> CaseLoopDesk:
        if self.deps.loop is None:
            raise DomainError("not_available", "the case loop is not running here")
        return self.deps.loop

    # -- reading ----------------------------------------------------------------------------

    async def h_taxonomy(self, request: web.Request, sess: Session, body: None
                         ) -> web.StreamResponse:
        tax = self.loop.taxonomy
        return web.json_response({
            "appeal_types": [{"code": c, "name": n} for c, n in tax.appeal_types.items()],
            "matters": tax.tree()})

    async def h_departments(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        rows = await self.loop.departments(city=request.query.get("city") or None)
        return web.json_response({"departments": [
            {"id": d.id, "name": d.name, "level": d.level, "city": d.city,
             "parent": d.parent_id, "unit": d.unit} for d in rows]})

    async def h_case_loop(self, request: web.Request, sess: Session, body: None
                          ) -> web.StreamResponse:
        d = self.deps
        number = request.match_info["number"]
        scope = await d.scope(sess)
        view = await self.loop.view(number, visible=scope.condition(),
                                    clear_text=sess.role in HOTLINE)
        await self._only_visible_repeats(view, scope)
        await d.audit.record(actor(sess, request), "case.loop_view", number)
        return web.json_response(view)

    async def h_case_loop_suggestion(self, request: web.Request, sess: Session, body: None
                                     ) -> web.StreamResponse:
        d, loop = self.deps, self.loop
        number = request.match_info["number"]
        scope = await d.scope(sess)
        view = await loop.view(number, visible=scope.condition(), clear_text=False)
        suggested = await loop.suggested_department(view["matter"], view["city"])
        names = {x.id: x.name for x in await loop.departments(city=view["city"])}
        repeats = [{"case": n, "reason": r} for n, r in await d.facts.links(number)
                   if r in REPEATS]
        shown = await self._visible(scope, [r["case"] for r in repeats])
        await d.audit.record(actor(sess, request), "case.loop_view", number,
                             {"suggestion": suggested})
        return web.json_response({
            "number": number, "matter": view["matter"], "matter_name": view["matter_name"],
            "city": view["city"], "department": suggested,
            "department_name": names.get(suggested or "", ""),
            "repeats": [r for r in repeats if r["case"] in shown]})

    async def h_supervision(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        d, q = self.deps, request.query
        # The query is checked against the route's description first (routes.query_problems).
        f = SupervisionFilter(
            light=q.get("light") or None,
            supervised=None if not q.get("supervised") else q["supervised"] == "true",
            department=q.get("department") or None, city=q.get("city") or None,
            state=q.get("state") or None, limit=int(q.get("limit", "50")),
            offset=int(q.get("offset", "0")))
        scope = await d.scope(sess)
        out = await self.loop.supervision(f, visible=scope.condition())
        # The filters and what was shown; which cases' free text (reasons, replies) was read.
        await d.audit.record(actor(sess, request), "cases.supervision", None, {
            "filters": {k: q[k] for k in FILTERS if q.get(k)},
            "results": len(out["cases"]), "total": out["total"],
            "texts": sorted({x["number"] for x in (*out["extensions"], *out["replies"])})})
        return web.json_response(out)

    # -- changes ----------------------------------------------------------------------------

    async def h_loop_classify(self, request: web.Request, sess: Session, body: ClassifyBody
                              ) -> web.StreamResponse:
        number = request.match_info["number"]
        address = (body.address or "").strip()
        view, changed, scope = await self._act(
            request, sess, Command("classify", reason=body.reason),
            Details(appeal_type=body.appeal_type, matter=body.matter, district=body.district,
                    address=address or None))
        if changed and address:
            # The address itself belongs on the case form (encrypted, versioned, audited);
            # the loop keeps only its keyed hash.
            form = (await self.deps.cases.detail(number, clear=False, scope=scope))["form"]
            if form.get("address") != address:
                await self.deps.cases.save_form(number, {"address": address}, by=sess.user,
                                                scope=scope, actor=actor(sess, request))
        return web.json_response(view)

    async def h_loop_finish_direct(self, request: web.Request, sess: Session, body: ReasonBody
                                   ) -> web.StreamResponse:
        return await self._answer(request, sess, Command("finish_direct", reason=body.reason))

    async def h_loop_dispatch(self, request: web.Request, sess: Session, body: DispatchBody
                              ) -> web.StreamResponse:
        return await self._answer(request, sess, Command(
            "dispatch", lead=body.lead, assist=tuple(dict.fromkeys(body.assist)),
            reason=body.reason))

    async def h_loop_review(self, request: web.Request, sess: Session, body: ReviewBody
                            ) -> web.StreamResponse:
        return await self._answer(request, sess, Command("review", accept=body.accept,
                                                         reason=body.reason))

    async def h_loop_follow_up(self, request: web.Request, sess: Session, body: FollowUpBody
                               ) -> web.StreamResponse:
        return await self._answer(request, sess, Command(
            "follow_up", reached=body.reached, resolved=body.resolved,
            satisfaction=body.satisfaction, reason=body.reason))

    async def h_loop_close(self, request: web.Request, sess: Session, body: ReasonBody
                           ) -> web.StreamResponse:
        return await self._answer(request, sess, Command("close", reason=body.reason))

    async def h_loop_reopen(self, request: web.Request, sess: Session, body: ReasonBody
                            ) -> web.StreamResponse:
        return await self._answer(request, sess, Command("reopen", reason=body.reason))

    async def h_loop_merge(self, request: web.Request, sess: Session, body: MergeBody
                           ) -> web.StreamResponse:
        # The case kept must be one the asker may see (else it does not exist for them).
        await self.deps.cases.visible(body.merge_into, await self.deps.scope(sess))
        return await self._answer(request, sess, Command("merge", reason=body.reason),
                                  Details(merge_into=body.merge_into))

    async def h_loop_decide_extension(self, request: web.Request, sess: Session,
                                      body: ExtensionDecisionBody) -> web.StreamResponse:
        return await self._answer(request, sess, Command(
            "decide_extension", accept=body.accept, reason=body.reason))

    async def h_loop_note(self, request: web.Request, sess: Session, body: ReasonBody
                          ) -> web.StreamResponse:
        return await self._answer(request, sess, Command("note", reason=body.reason))

    # -- helpers ----------------------------------------------------------------------------

    async def _answer(self, request: web.Request, sess: Session, cmd: Command,
                      details: Details | None = None) -> web.StreamResponse:
        view, _, _ = await self._act(request, sess, cmd, details)
        return web.json_response(view)

    async def _act(self, request: web.Request, sess: Session, cmd: Command,
                   details: Details | None = None) -> tuple[dict[str, Any], bool, Scope]:
        """Apply the command as the signed-in user, within their need-to-know; the case's
        loop afterwards, whether it changed (a retry with a known key does not), the scope."""
        d = self.deps
        number = request.match_info["number"]
        scope = await d.scope(sess)
        who = actor(sess, request)
        changes: list[LoopChange] = []

        def witness(session: AsyncSession, change: LoopChange) -> None:
            # What changed, never the free text or the address (personal data).
            d.audit.add(session, who, "case.loop", number, {
                "action": change.action, "state": change.state, "round": change.round,
                "departments": list(change.departments)})
            if change.state == CLOSED and change.action != "note":
                d.audit.add(session, who, "case.close", number, {"how": change.action})
            changes.append(change)

        view = await self.loop.act(
            number, LoopActor(sess.user, sess.role), cmd, details,
            visible=scope.condition(), idempotency_key=request.headers.get("Idempotency-Key"),
            witness=witness)
        if not changes:  # a retry: nothing changed, the case was read
            await d.audit.record(who, "case.loop_view", number, {"retry": cmd.action})
        await self._only_visible_repeats(view, scope)
        return view, bool(changes), scope

    async def _visible(self, scope: Scope, numbers: list[str]) -> set[str]:
        """Which of these cases the asker may see (a link names the other case's number)."""
        out = set()
        for n in dict.fromkeys(numbers):
            try:
                await self.deps.cases.visible(n, scope)
            except DomainError:
                continue
            out.add(n)
        return out

    async def _only_visible_repeats(self, view: dict[str, Any], scope: Scope) -> None:
        """The classification's repeat complaints on the timeline, limited to the cases the
        asker may see."""
        facts = [f for f in view.get("timeline", []) if f.get("repeats")]
        if not facts:
            return
        shown = await self._visible(scope, [n for f in facts for n in f["repeats"]])
        for f in facts:
            f["repeats"] = [n for n in f["repeats"] if n in shown]
