"""The hotline's side of the case loop (工单流转) over HTTP, through the real console on the
real service (SQLite and PostgreSQL): classify, dispatch, review, 回访 and close; who may do
what (refused by the loop's decide, or by need-to-know: a case outside it is 404); the
Idempotency-Key; the supervisors' 督办 list and its filters; the audit entries; the address
and the free text never in clear where they do not belong.

The departments' own actions (签收, 答复, 延期申请) are their room's API; here they are
taken through the store, as that API does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agent_desk.web.auth import Users
from cases.loop import states as st
from cases.loop.store import Details
from tests.support.console import CONSOLE_PASSWORD

pytestmark = [pytest.mark.asterisk]

CALLER = "13912347777"
ADDRESS = "玄武区珠江路88号"
CG = st.Actor("cg-user", "department", "nj-chengguan")
RS = st.Actor("rs-user", "department", "nj-renshe")
VENDING = "urban.sanitation.street_vending"
LOGINS = (("cg-user", "nj-chengguan"), ("rs-user", "nj-renshe"))


def loop_path(number: str, action: str = "") -> str:
    return f"/api/cases/{number}/loop" + (f"/{action}" if action else "")


async def classified(console, user, caller: str = CALLER, city: str = "nanjing",
                     agent: str | None = "1001", matter: str = VENDING) -> str:
    number = await console.call_case(caller, city, agent)
    status, doc = await user.post(loop_path(number, "classify"), {
        "appeal_type": "complaint", "matter": matter,
        "district": {"nanjing": "xuanwu", "suzhou": "gusu"}[city]})
    assert status == 200, doc
    return number


async def audit_rows(svc, number: str) -> list[tuple[str, str, dict]]:
    async with svc.store.sessions() as s:
        rows = (await s.execute(sa.text(
            "SELECT action, username, detail FROM audit_log WHERE case_number = :n "
            "ORDER BY id"), {"n": number})).all()
    return [(a, u, d if isinstance(d, dict) else json.loads(d))
            for a, u, d in rows]


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_classify_dispatch_review_follow_up_close_over_http(console):
    svc = console.service
    await console.seed_departments(*LOGINS)
    agent, sup = await console.user("agent1001"), await console.user("sup")
    cg = await console.user("cg-user")

    # What the pickers show: 诉求类型 and the 事项 tree with their Chinese names; the
    # departments of the city and the province's.
    status, tax = await agent.get("/api/taxonomy")
    assert status == 200 and {"code": "complaint", "name": "投诉"} in tax["appeal_types"]
    urban = next(m for m in tax["matters"] if m["code"] == "urban")
    assert urban["name"] == "城乡建设"
    assert urban["children"][0]["name"] == "市容环卫"
    status, doc = await agent.get("/api/departments?city=nanjing")
    ids = {d["id"]: d["name"] for d in doc["departments"]}
    assert ids["nj-chengguan"] == "南京市城市管理局" and "js-power" in ids
    assert "sz-chengguan" not in ids

    number = await console.call_case(CALLER, "nanjing", "1001")
    status, doc = await agent.post(loop_path(number, "dispatch"), {"lead": "nj-chengguan"})
    assert status == 422 and doc["error"] == "invalid", doc  # classify first
    status, doc = await agent.post(loop_path(number, "classify"), {
        "appeal_type": "complaint", "matter": "urban", "district": "xuanwu"})
    assert status == 422 and "group" in doc["message"], doc  # a leaf is needed
    status, doc = await agent.post(loop_path(number, "classify"), {
        "appeal_type": "complaint", "matter": VENDING, "district": "gusu"})
    assert status == 422 and "not a district of nanjing" in doc["message"], doc  # 苏州's
    status, v = await agent.post(loop_path(number, "classify"), {
        "appeal_type": "complaint", "matter": VENDING, "district": "xuanwu",
        "address": ADDRESS})
    assert status == 200, v
    assert v["state"] == "accepted" and v["matter_name"] == "城乡建设 › 市容环卫 › 占道经营"
    assert v["appeal_type_name"] == "投诉" and v["district_name"] == "玄武区"
    assert {"id": "qinhuai", "name": "秦淮区"} in v["districts"]
    # The address went onto the case form (encrypted there), not into the loop.
    status, case = await agent.get(f"/api/cases/{number}")
    assert case["form"]["address"] == ADDRESS
    status, v = await agent.post(loop_path(number, "classify"), {  # again, the same place
        "appeal_type": "complaint", "matter": VENDING, "address": ADDRESS})
    assert status == 200 and v["district"] == "xuanwu", v

    status, sug = await agent.get(loop_path(number, "suggestion"))
    assert status == 200, sug
    assert (sug["department"], sug["department_name"]) == ("nj-chengguan", "南京市城市管理局")

    # 派单 with a retry of the same request: applied once.
    key = {"Idempotency-Key": f"dispatch-{number}"}
    body = {"lead": "nj-chengguan", "assist": ["nj-renshe"], "reason": "请核实处理"}
    status, v = await agent.post(loop_path(number, "dispatch"), body, headers=key)
    assert status == 200 and v["state"] == "dispatched" and v["round"] == 1, v
    status, again = await agent.post(loop_path(number, "dispatch"), body, headers=key)
    assert status == 200 and again["round"] == 1 and again["version"] == v["version"]
    assert [f["kind"] for f in again["timeline"]].count("loop.dispatch") == 1
    status, doc = await agent.post(loop_path(number, "dispatch"), body,
                                   headers={"Idempotency-Key": "bad key with spaces"})
    assert status == 422, doc
    names = {d["department"]: (d["department_name"], d["role"]) for d in v["dispatches"]}
    assert names == {"nj-chengguan": ("南京市城市管理局", "lead"),
                     "nj-renshe": ("南京市人力资源和社会保障局", "assist")}

    # The department signs and answers (its own API); the hotline reads the reply, the
    # department's view of the loop carries no free text.
    loop = svc.case_loop
    await loop.act(number, CG, st.Command("sign"))
    await loop.act(number, CG, st.Command("reply", reason="已清理占道摊点"),
                   Details(contacted=True))
    status, v = await agent.get(loop_path(number))
    assert v["state"] == "replied"
    assert next(d for d in v["dispatches"] if d["role"] == "lead")["reply"] == "已清理占道摊点"
    status, dv = await cg.get(loop_path(number))
    assert status == 200 and dv["state"] == "replied"
    assert all(d["reply"] == "" for d in dv["dispatches"])
    assert "请核实处理" not in str(dv)

    # 审核: sent back (a reason is needed), then answered again and accepted.
    status, doc = await sup.post(loop_path(number, "review"), {"accept": False})
    assert status == 422 and doc["error"] == "invalid", doc
    status, v = await sup.post(loop_path(number, "review"),
                               {"accept": False, "reason": "未说明后续巡查安排"})
    assert status == 200 and v["state"] == "handling", v
    await loop.act(number, CG, st.Command("reply", reason="已清理并安排每日巡查"),
                   Details(contacted=True))
    status, v = await agent.post(loop_path(number, "review"), {"accept": True})
    assert status == 200 and v["state"] == "follow_up", v
    status, doc = await agent.post(loop_path(number, "close"), {})
    assert status == 403 and doc["error"] == "forbidden", doc  # 结案 is a supervisor's

    # 回访 by the agent: resolved and satisfied, the case is closed (办结).
    status, v = await agent.post(loop_path(number, "follow_up"), {
        "reached": True, "resolved": True, "satisfaction": "satisfied", "reason": "市民满意"})
    assert status == 200 and v["state"] == "closed" and v["closed_how"] == "follow_up", v
    assert v["followup"]["satisfaction"] == "satisfied"
    status, case = await agent.get(f"/api/cases/{number}")
    assert case["status"] == "closed"
    status, doc = await agent.post(loop_path(number, "follow_up"), {"reached": False})
    assert status == 409, doc
    kinds = [f["kind"] for f in v["timeline"]]
    assert kinds == ["loop.classify", "loop.classify", "loop.dispatch", "loop.sign", "loop.reply",
                     "loop.review", "loop.reply", "loop.review", "loop.follow_up"]
    assert [f["by"] for f in v["timeline"]][:3] == ["agent1001"] * 3

    # Audited: every change by HTTP with its entry (what, never the text or the address),
    # the close as a close, every read.
    rows = await audit_rows(svc, number)
    changes = [(u, d["action"]) for a, u, d in rows if a == "case.loop"]
    assert changes == [("agent1001", "classify"), ("agent1001", "classify"),
                       ("agent1001", "dispatch"),
                       ("sup", "review"), ("agent1001", "review"),
                       ("agent1001", "follow_up")]
    assert [a for a, _, _ in rows].count("case.close") == 1
    assert [a for a, _, _ in rows].count("case.form") == 1  # the address saved, once
    assert {"case.loop_view"} <= {a for a, _, _ in rows}
    assert ("case.loop_view", "agent1001", {"retry": "dispatch"}) in rows
    for text in (ADDRESS, "已清理", "市民满意", "未说明"):
        assert text not in str(rows)
    # Neither the address nor the free text is stored in clear in the loop's facts.
    async with svc.store.sessions() as s:
        facts = (await s.execute(sa.text(
            "SELECT e.detail FROM call_events e JOIN cases c ON c.id = e.case_id "
            "WHERE c.number = :n"), {"n": number})).scalars().all()
    for text in (ADDRESS, "珠江路", "已清理", "市民满意", "请核实处理"):
        assert text not in str(facts)


async def test_who_may_do_what(console):
    svc = console.service
    await console.seed_departments(*LOGINS)
    agent, other_agent = await console.user("agent1001"), await console.user("agent1002")
    sup, cg, rs = (await console.user("sup"), await console.user("cg-user"),
                   await console.user("rs-user"))
    number = await classified(console, agent)
    theirs = await classified(console, other_agent, caller="13700002222", agent="1002")

    # A department user is not the hotline: no dispatch, no supervision list.
    status, doc = await cg.post(loop_path(number, "dispatch"), {"lead": "nj-chengguan"})
    assert status == 403 and doc["error"] == "forbidden", doc
    status, doc = await cg.get("/api/supervision")
    assert status == 403
    # A case not dispatched to the department does not exist for it.
    status, doc = await cg.get(loop_path(number))
    assert status == 404 and doc["error"] == "not_found", doc
    # Nor another agent's case for an agent (reads and changes alike).
    status, _ = await agent.get(loop_path(theirs))
    assert status == 404
    status, _ = await agent.post(loop_path(theirs, "dispatch"), {"lead": "nj-chengguan"})
    assert status == 404
    status, _ = await agent.post(loop_path(number, "merge"), {"merge_into": theirs})
    assert status == 404  # the case kept must be one the agent may see

    status, v = await agent.post(loop_path(number, "dispatch"), {"lead": "nj-chengguan"})
    assert status == 200, v
    status, v = await cg.get(loop_path(number))
    assert status == 200 and v["lead_department_name"] == "南京市城市管理局"
    status, _ = await rs.get(loop_path(number))
    assert status == 404  # 人社局 holds no dispatch of it
    status, doc = await agent.post(loop_path(number, "dispatch"), {"lead": "nj-renshe"})
    assert status == 409 and doc["error"] == "conflict", doc  # already dispatched

    # 延期: asked by the department; an agent may not decide, a supervisor does.
    loop = svc.case_loop
    await loop.act(number, CG, st.Command("sign"))
    await loop.act(number, CG, st.Command("request_extension", days=3, reason="需协调街道"))
    status, doc = await agent.post(loop_path(number, "decide_extension"), {"accept": True})
    assert status == 403 and doc["error"] == "forbidden", doc
    status, board = await sup.get("/api/supervision")
    ext = next(x for x in board["extensions"] if x["number"] == number)
    assert (ext["department_name"], ext["days"], ext["reason"]) == (
        "南京市城市管理局", 3, "需协调街道")
    due = datetime.fromisoformat(v["due_at"])
    status, v = await sup.post(loop_path(number, "decide_extension"), {"accept": True})
    assert status == 200, v
    assert datetime.fromisoformat(v["due_at"]) > due  # 3 working days later
    assert v["dispatches"][0]["extension"]["state"] == "approved"
    status, board = await sup.get("/api/supervision")
    assert number not in {x["number"] for x in board["extensions"]}

    # Reopening is a supervisor's, of a closed case only; 并单 of an open case.
    status, doc = await agent.post(loop_path(number, "reopen"), {"reason": "x"})
    assert status == 403, doc
    status, doc = await sup.post(loop_path(number, "reopen"), {"reason": "市民再次来电"})
    assert status == 409, doc
    spare = await classified(console, agent, caller="13600003333")
    status, v = await agent.post(loop_path(spare, "merge"), {"merge_into": number})
    assert status == 200 and v["state"] == "merged", v
    status, doc = await agent.post(loop_path("20990101000001", "note"), {"reason": "x"})
    assert status == 404
    rows = await audit_rows(svc, spare)
    assert [d["action"] for a, _, d in rows if a == "case.loop"] == ["classify", "merge"]

    # Closed with the case form's 办结: the loop follows, nothing closes it twice.
    formed = await classified(console, agent, caller="13600004444")
    status, doc = await agent.post(f"/api/cases/{formed}/close")
    assert status == 200, doc
    status, v = await agent.get(loop_path(formed))
    assert v["state"] == "closed"
    status, doc = await agent.post(loop_path(formed, "finish_direct"), {})
    assert status == 409 and doc["error"] == "conflict", doc
    assert [a for a, _, _ in await audit_rows(svc, formed)].count("case.close") == 1


def yellow_start(svc, now: datetime) -> datetime:
    """A time a complaint dispatched then (and signed) is yellow at ``now``: past 80 % of its
    working time, not yet due (found on the service's own calendar)."""
    policy = svc.case_loop.deadlines
    for hours in range(1, 24 * 30):
        at = now - timedelta(hours=hours)
        if policy.light(at, policy.handle_due("complaint", at), now) == "yellow":
            return at
    raise AssertionError("no yellow start within 30 days")


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_the_supervision_list_and_its_filters(console):
    svc = console.service
    await console.seed_departments(*LOGINS)
    sweep = await console.own_sweep()
    await Users(svc.store.sessions).add("sup-nj", CONSOLE_PASSWORD, "supervisor",
                                        city="nanjing")
    agent, sup = await console.user("agent1001"), await console.user("sup")
    sup_nj = await console.user("sup-nj")
    now = datetime.now(UTC)
    red = await classified(console, agent)
    yellow = await classified(console, agent, caller="13700004444")
    later_red = await classified(console, agent, caller="13700005555")
    waiting = await classified(console, agent, caller="13700006666")  # not dispatched
    suzhou = await classified(console, sup, caller="13700007777", city="suzhou", agent="2001")
    # Dispatched days ago (the store's clock), never signed for: overdue, 督办.
    for n, lead, days, user in ((suzhou, "sz-chengguan", 40, sup),
                                (red, "nj-chengguan", 30, agent),
                                (later_red, "nj-chengguan", 10, agent)):
        with console.loop_clock(now - timedelta(days=days)):
            status, doc = await user.post(loop_path(n, "dispatch"), {"lead": lead})
        assert status == 200, doc
    # Signed for in time, most of its working time used: yellow.
    at = yellow_start(svc, now)
    with console.loop_clock(at):
        status, doc = await agent.post(loop_path(yellow, "dispatch"), {"lead": "nj-renshe"})
        assert status == 200, doc
        await svc.case_loop.act(yellow, RS, st.Command("sign"))
    report = await sweep.run()
    assert report.orders == 6, report  # signing and handling overdue, three times

    async def listed(user, query: str = "") -> list[str]:
        status, doc = await user.get("/api/supervision" + query)
        assert status == 200, doc
        return [c["number"] for c in doc["cases"]]

    # Most overdue first; the province sees every city, Nanjing's supervisor only Nanjing.
    assert await listed(sup, "?light=red") == [suzhou, red, later_red]
    assert await listed(sup_nj, "?light=red") == [red, later_red]
    assert await listed(sup_nj, "?city=suzhou") == []
    assert await listed(sup_nj) == [red, later_red, yellow, waiting]
    assert await listed(sup_nj, "?light=yellow") == [yellow]
    assert await listed(sup_nj, "?light=none") == [waiting]
    assert await listed(sup_nj, "?supervised=true") == [red, later_red]
    assert await listed(sup_nj, "?supervised=false") == [yellow, waiting]
    assert await listed(sup_nj, "?department=nj-chengguan") == [red, later_red]
    assert await listed(sup_nj, "?state=accepted") == [waiting]
    assert await listed(sup_nj, "?state=handling&department=nj-renshe") == [yellow]
    assert await listed(sup_nj, "?state=dispatched&department=nj-renshe") == []
    # Pages.
    status, doc = await sup_nj.get("/api/supervision?limit=2&offset=1")
    assert doc["total"] == 4 and [c["number"] for c in doc["cases"]] == [later_red, yellow]
    first = (await sup_nj.get("/api/supervision?limit=1"))[1]["cases"][0]
    assert first["lead_department_name"] == "南京市城市管理局"
    assert first["matter_name"] == "城乡建设 › 市容环卫 › 占道经营" and first["supervised"]
    # Bad filters are refused; agents have no supervision list.
    for query in ("?light=purple", "?state=closed", "?limit=0", "?supervised=yes"):
        status, _ = await sup.get("/api/supervision" + query)
        assert status == 422, query
    status, _ = await agent.get("/api/supervision")
    assert status == 403

    # Replies waiting for review (审核) are listed with their text, for the supervisor.
    loop = svc.case_loop
    await loop.act(yellow, RS, st.Command("reply", reason="已答复市民"), Details(contacted=True))
    status, doc = await sup_nj.get("/api/supervision")
    assert [(r["number"], r["department_name"], r["reply"]) for r in doc["replies"]] == [
        (yellow, "南京市人力资源和社会保障局", "已答复市民")]
    assert yellow in [c["number"] for c in doc["cases"]]  # still open, waiting for 审核
    # The list's reading is audited: its filters, and whose free text it showed.
    async with svc.store.sessions() as s:
        rows = (await s.execute(sa.text(
            "SELECT username, detail FROM audit_log WHERE action = 'cases.supervision' "
            "ORDER BY id"))).all()
    details = [d if isinstance(d, dict) else json.loads(d) for _, d in rows]
    assert {"light": "red"} in [d["filters"] for d in details]
    assert details[-1]["texts"] == [yellow] and "已答复" not in str(details)
