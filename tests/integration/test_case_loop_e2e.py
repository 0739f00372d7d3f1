"""The whole case loop on a real call (issue 16): a caller dials 12345 through the real
Asterisk and an agent answers; the call's case is written on the form, classified and
dispatched by the agent; the wrong department returns it and the agent reassigns it to the
suggested one (改派); that department signs for it and replies in headless Chromium, in
Chinese; the supervisor reviews the reply, the agent records the follow-up (回访) and the case
is closed (办结). A later case of the same caller is linked to it as a repeat complaint.
Every change is a fact on the timeline and an entry in the audit log."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.support.browser import chromium, login, new_page
from tests.support.calls import CALLER, answered_call
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

REPLY = "已到现场取缔占道摊点，并电话告知市民处理结果"


async def _ended_case(service):
    cases = await service.store.recent(5)
    ended = [c for c in cases if c.call_state == "ended" and c.agent_id == "1001"]
    return ended[0] if ended else None


async def _audited(console, number: str) -> list[tuple[str, str]]:
    async with console.service.engine.connect() as c:
        rows = (await c.execute(sa.text(
            "SELECT username, action FROM audit_log WHERE case_number = :n ORDER BY id"),
            {"n": number})).all()
    return [(u, a) for u, a in rows]


async def test_a_call_becomes_a_case_that_goes_round_the_whole_loop(
        console, phones, sounds, tmp_path, artifacts):

    svc = console.service
    # The configuration's directory was written at start (hotline.example.toml), with its
    # default department per 事项 and city.
    configured = {d.id: d for d in await svc.case_loop.departments()}
    assert configured["js-gov"].level == "province" and configured["nj-xuanwu"].city == "nanjing"
    assert await svc.case_loop.suggested_department("labour.social_security.card",
                                                    "suzhou") == "sz-renshe"
    await console.seed_departments(("cg", "nj-chengguan"), ("rs", "nj-renshe"))
    await answered_call(console.lab, phones, sounds, tmp=tmp_path)
    await svc.drain()
    case = await eventually(lambda: _ended_case(svc), what="the call's case")
    number = case.number
    agent, sup = await console.user("agent1001"), await console.user("sup")
    cg, rs = await console.user("cg"), await console.user("rs")

    # The agent who answered writes the case and classifies it (诉求类型 and 事项).
    status, doc = await agent.put(f"/api/cases/{number}/form", {
        "subject": "占道经营", "address": "玄武区珠江路88号",
        "content": "珠江路夜市摊贩占道经营，晚上噪音扰民"})
    assert status == 200, doc
    status, view = await agent.post(f"/api/cases/{number}/loop/classify", {
        "appeal_type": "complaint", "matter": "urban.sanitation.street_vending",
        "district": "xuanwu", "address": "玄武区珠江路88号"})
    assert status == 200, view
    assert view["matter_name"] == "城乡建设 › 市容环卫 › 占道经营"
    _, suggestion = await agent.get(f"/api/cases/{number}/loop/suggestion")
    assert suggestion["department"] == "nj-chengguan"

    # Dispatched to the wrong department, which returns it (退单) with its reason ...
    status, view = await agent.post(f"/api/cases/{number}/loop/dispatch", {
        "lead": "nj-renshe", "reason": "请核实并答复市民"})
    assert status == 200 and view["state"] == "dispatched", view
    assert (await cg.get(f"/api/department/cases/{number}"))[0] == 404  # not theirs yet
    status, doc = await rs.post(f"/api/department/cases/{number}/return",
                                {"reason": "占道经营不属于人社部门职责，请改派城管"})
    assert status == 200 and doc["state"] == "returned", doc
    # ... and the agent reassigns it (改派) to the suggested department.
    status, view = await agent.post(f"/api/cases/{number}/loop/dispatch",
                                    {"lead": suggestion["department"]})
    assert status == 200 and view["round"] == 2 and view["state"] == "dispatched", view

    # The department signs for it and replies, in Chromium, in Chinese.
    async with chromium() as browser:
        page = await new_page(browser, timezone_id="Asia/Shanghai")
        await login(browser, console.base_url, "cg", page=page)
        await page.wait_for_url("**/departments")
        row = page.locator(f'#list tr[data-case="{number}"]')
        await row.wait_for()
        assert "待签收" in await row.inner_text()
        await row.locator("a").click()
        await page.wait_for_function(
            f"() => document.querySelector('#d-number')?.textContent === '{number}'")
        assert await page.text_content("#d-content") == "珠江路夜市摊贩占道经营，晚上噪音扰民"
        await page.click("#a-sign")
        await page.wait_for_function(
            "() => document.querySelector('#d-state')?.textContent === '办理中'")
        await page.fill("#a-reply-text", REPLY)
        await page.check("#a-contacted")
        await page.click("#a-reply")
        await page.wait_for_function(
            "() => document.querySelector('#d-case-state')?.textContent === '待审核'")
        await page.screenshot(path=str(artifacts / "case-loop-e2e-department.png"),
                              full_page=True)
        await page.context.close()

    # The hotline reviews the reply, follows up with the caller, and the case is closed.
    status, view = await sup.post(f"/api/cases/{number}/loop/review", {"accept": True})
    assert status == 200 and view["state"] == "follow_up", view
    status, view = await agent.post(f"/api/cases/{number}/loop/follow_up", {
        "reached": True, "resolved": True, "satisfaction": "satisfied"})
    assert status == 200 and view["state"] == "closed", view
    assert view["closed_how"] == "follow_up"
    lead = next(d for d in view["dispatches"] if d["round"] == 2)
    assert lead["reply"] == REPLY and lead["contacted_caller"] is True
    kinds = [f["kind"] for f in view["timeline"]]
    assert kinds == ["loop.classify", "loop.dispatch", "loop.return", "loop.dispatch",
                     "loop.sign", "loop.reply", "loop.review", "loop.follow_up"]
    who = [f.get("department") or f["by"] for f in view["timeline"]]
    assert who == ["agent1001", "agent1001", "nj-renshe", "agent1001", "nj-chengguan",
                   "nj-chengguan", "sup", "agent1001"]
    # The call record says 办结 too (a later call of this caller is not "open case").
    closed = await svc.store.get(number)
    assert closed is not None and closed.closed_at is not None

    # Every change audited, by whoever made it.
    audited = [a for a in await _audited(console, number) if a[1] == "case.loop"]
    assert audited == [("agent1001", "case.loop"), ("agent1001", "case.loop"),
                       ("rs", "case.loop"), ("agent1001", "case.loop"), ("cg", "case.loop"),
                       ("cg", "case.loop"), ("sup", "case.loop"), ("agent1001", "case.loop")]

    # The same caller again, about the same matter: linked as a repeat complaint.
    again = await console.call_case(CALLER, "nanjing", "1001")
    status, view = await agent.post(f"/api/cases/{again}/loop/classify", {
        "appeal_type": "complaint", "matter": "urban.sanitation.street_vending"})
    assert status == 200, view
    _, suggestion = await agent.get(f"/api/cases/{again}/loop/suggestion")
    assert number in [r["case"] for r in suggestion["repeats"]], suggestion
