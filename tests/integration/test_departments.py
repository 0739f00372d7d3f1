"""The department's side of the case loop (agent_desk/departments), through the real console
over HTTP on the real service (SQLite and PostgreSQL): the directory kept by an admin (one by
one and by CSV, round trip), a department's staff seeing only its own cases with the caller
masked unless it must call back, signing, returning, noting, answering and asking for more
time by the page's API and by the department system's API token (a retried change applies
once), tokens revoked and rate-limited; and in headless Chromium, a department user signing in,
signing for a case and answering it, in Chinese."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import sqlalchemy as sa

from agent_desk.access import Scope
from agent_desk.web.auth import Users
from cases.loop import states as st
from cases.loop.outbox import WebhookDelivery
from cases.loop.store import DepartmentEntry, Details
from tests.support.browser import chromium, login, new_page
from tests.support.console import CONSOLE_PASSWORD

pytestmark = [pytest.mark.asterisk]

CALLER = "13812345678"
MASKED = "138****5678"
AGENT = st.Actor("agent1001", "agent")
BOTH = pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)


async def _directory(console) -> None:
    await console.service.case_loop.upsert_departments([
        DepartmentEntry("nanjing", "南京市人民政府", "city", "nanjing"),
        DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing", "nanjing",
                        "城管局"),
        DepartmentEntry("nj-renshe", "南京市人力资源和社会保障局", "city", "nanjing",
                        "nanjing", "人社局"),
    ])
    users = Users(console.service.store.sessions)
    await users.add("cg", CONSOLE_PASSWORD, "department", display_name="城管 王科员",
                    department_id="nj-chengguan")
    await users.add("rs", CONSOLE_PASSWORD, "department", department_id="nj-renshe")


async def _dispatched(console, lead: str, assist: tuple[str, ...] = (),
                      appeal: str = "complaint", content: str = "珠江路夜市占道经营，噪音扰民"
                      ) -> str:
    """A web case, its form written and classified, dispatched by the hotline."""
    loop = console.service.case_loop
    number = await loop.create_case(channel="web", city="nanjing", caller=CALLER)
    await console.console.cases.save_form(
        number, {"subject": "占道经营", "address": "玄武区珠江路88号", "content": content},
        by="agent1001", scope=Scope.everything())
    await loop.act(number, AGENT, st.Command("classify"), Details(
        appeal_type=appeal, matter="urban.sanitation.street_vending", district="xuanwu"))
    await loop.act(number, AGENT, st.Command("dispatch", lead=lead, assist=assist,
                                             reason="请核实并答复市民"))
    return number


async def _audit(console, action: str) -> list[tuple[str, str, str | None, dict]]:
    async with console.service.engine.connect() as c:
        rows = (await c.execute(sa.text(
            "SELECT username, role, case_number, detail FROM audit_log WHERE action = :a "
            "ORDER BY id"), {"a": action})).all()
    return [(u, r, n, d if isinstance(d, dict) else json.loads(d)) for u, r, n, d in rows]


@BOTH
async def test_admin_keeps_the_directory_and_its_csv_round_trips(console):
    await _directory(console)
    admin = await console.user("admin")
    status, doc = await admin.put("/api/directory/departments/xw-district", {
        "name": "玄武区人民政府", "level": "district", "city": "nanjing", "parent": "nanjing"})
    assert status == 200 and doc["department"]["parent_name"] == "南京市人民政府", doc
    status, doc = await admin.put("/api/directory/departments/xw-meiyuan", {
        "name": "梅园新村街道办事处", "level": "street", "city": "nanjing",
        "parent": "xw-district", "unit": "街道"})
    assert status == 200, doc
    # The directory's own rules: a known city, a parent that exists and no loop.
    for body, why in (({"city": "atlantis"}, "unknown city"),
                      ({"parent": "nowhere"}, "unknown department"),
                      ({"parent": "xw-meiyuan"}, "loop")):
        status, doc = await admin.put("/api/directory/departments/xw-district", {
            "name": "玄武区人民政府", "level": "district", **body})
        assert status == 422 and why in doc["message"], doc
    status, doc = await admin.put("/api/directory/departments/bad", {
        "name": "=HYPERLINK(1)", "level": "city"})
    assert status == 422
    # Deactivated: out of the list the hotline dispatches from, still in the full one.
    status, doc = await admin.post("/api/directory/departments/xw-meiyuan/state",
                                   {"active": False})
    assert status == 200 and doc["department"]["active"] is False
    _, listed = await admin.get("/api/directory")
    assert "xw-meiyuan" not in {d["id"] for d in listed["departments"]}
    _, listed = await admin.get("/api/directory?all=true")
    assert {"nanjing", "nj-chengguan", "xw-district", "xw-meiyuan"} <= {
        d["id"] for d in listed["departments"]}
    # Agents read the directory (they dispatch); only admins change it.
    agent = await console.user("agent1001")
    assert (await agent.get("/api/directory"))[0] == 200
    assert (await agent.put("/api/directory/departments/x", {
        "name": "x", "level": "city"}))[0] == 403

    # CSV: export, edit, check, import; what comes back is what went out.
    resp = await admin.client.get("/api/directory/export")
    assert resp.status == 200 and resp.content_type == "text/csv"
    exported = await resp.text()
    assert exported.startswith("\ufeffid,name,level,city,parent,unit,webhook_url")
    rows = list(csv.DictReader(io.StringIO(exported.lstrip("\ufeff"))))
    active = {d["id"] for d in listed["departments"] if d["active"]}
    assert {r["id"] for r in rows} == active  # the configuration's and these
    assert {"nanjing", "nj-chengguan", "nj-renshe", "xw-district"} <= active
    changed = exported.replace("南京市城市管理局", "南京市城市管理局（综合执法）") + \
        "xw-xiaoling,孝陵卫街道办事处,street,nanjing,xw-district,街道,\r\n"
    status, doc = await admin.post("/api/directory/import", {"csv": changed, "dry_run": True})
    assert status == 200 and doc == {"ok": True, "count": len(rows) + 1, "created": 1,
                                     "updated": len(rows), "dry_run": True}
    _, listed = await admin.get("/api/directory")
    assert "xw-xiaoling" not in {d["id"] for d in listed["departments"]}
    status, doc = await admin.post("/api/directory/import", {"csv": changed})
    assert status == 200 and doc["created"] == 1, doc
    resp = await admin.client.get("/api/directory/export")
    again = (await resp.text()).lstrip("\ufeff")
    assert again == changed.lstrip("\ufeff")
    status, doc = await admin.post("/api/directory/import", {
        "csv": "id,name,level\nx1,某单位,county\n"})
    assert status == 422 and "row 2" in doc["message"]

    # The default department of a 事项, per city.
    status, doc = await admin.put("/api/directory/defaults", {
        "matter": "urban.sanitation.street_vending", "city": "nanjing",
        "department": "nj-chengguan"})
    assert status == 200, doc
    assert (await admin.put("/api/directory/defaults", {
        "matter": "urban", "department": "nj-chengguan"}))[0] == 422  # a group, not an item
    _, doc = await admin.get("/api/directory/defaults")
    assert {"matter": "urban.sanitation.street_vending",
            "matter_name": "城乡建设 › 市容环卫 › 占道经营", "city": "nanjing",
            "department": "nj-chengguan",
            "department_name": "南京市城市管理局（综合执法）"} in doc["defaults"]
    assert "urban.sanitation.street_vending" in {m["code"] for m in doc["matters"]}
    assert await console.service.case_loop.suggested_department(
        "urban.sanitation.street_vending", "nanjing") == "nj-chengguan"
    # Removed again: the city's rule goes, the suggestion falls back (here: to none).
    q = "/api/directory/defaults?matter=urban.sanitation.street_vending&city=nanjing"
    assert (await admin.call("DELETE", q))[0] == 200
    assert (await admin.call("DELETE", q))[0] == 404
    assert (await admin.call("DELETE", "/api/directory/defaults"))[0] == 422
    _, doc = await admin.get("/api/directory/defaults")
    assert not [d for d in doc["defaults"] if d["matter"] == "urban.sanitation.street_vending"
                and d["city"] == "nanjing"]
    assert await console.service.case_loop.suggested_department(
        "urban.sanitation.street_vending", "nanjing") is None
    await admin.put("/api/directory/defaults", {
        "matter": "urban.sanitation.street_vending", "city": "nanjing",
        "department": "nj-chengguan"})

    # Department users: made with the users API, bound to a department of the directory.
    status, doc = await admin.post("/api/users", {
        "username": "xw-user", "password": CONSOLE_PASSWORD, "role": "department",
        "department_id": "nowhere"})
    assert status == 422
    status, doc = await admin.post("/api/users", {
        "username": "xw-user", "password": CONSOLE_PASSWORD, "role": "department",
        "department_id": "xw-district", "display_name": "玄武区 李主任"})
    assert status == 200 and doc["role"] == "department"
    _, doc = await admin.get("/api/directory/departments/xw-district/users")
    assert doc["users"] == [{"user": "xw-user", "name": "玄武区 李主任", "disabled": False}]

    actions = {a for a in ("directory.change", "directory.import", "directory.export",
                           "directory.default") if await _audit(console, a)}
    assert actions == {"directory.change", "directory.import", "directory.export",
                       "directory.default"}
    assert [d["count"] for *_, d in await _audit(console, "directory.import")] == [
        len(rows) + 1]


@BOTH
async def test_a_department_sees_only_its_cases_and_the_caller_masked_until_it_must_call(
        console):
    await _directory(console)
    ours = await _dispatched(console, "nj-chengguan", ("nj-renshe",))
    theirs = await _dispatched(console, "nj-renshe")
    cg, rs = await console.user("cg"), await console.user("rs")

    status, doc = await cg.get("/api/department/cases")
    assert status == 200, doc
    assert doc["department"]["name"] == "南京市城市管理局"
    assert [c["number"] for c in doc["cases"]] == [ours]
    item = doc["cases"][0]
    assert item["dispatch_state"] == "pending" and item["role"] == "lead"
    assert item["matter_name"] == "城乡建设 › 市容环卫 › 占道经营"
    assert item["appeal_type_name"] == "投诉" and item["subject"] == "占道经营"
    assert item["light"] == "green" and item["deadline"] == item["sign_due_at"]
    assert doc["counts"]["pending"] == 1 and doc["counts"]["todo"] == 1
    # Another department's case does not exist for it, to read or to change.
    for status, _ in (await cg.get(f"/api/department/cases/{theirs}"),
                      await cg.post(f"/api/department/cases/{theirs}/sign"),
                      await cg.get(f"/api/cases/{theirs}")):
        assert status in (403, 404)
    assert (await cg.get(f"/api/department/cases/{theirs}"))[0] == 404
    assert (await cg.post(f"/api/department/cases/{theirs}/sign"))[0] == 404
    # The hotline's pages are not theirs, and theirs is not the hotline's.
    agent = await console.user("agent1001")
    assert (await agent.get("/api/department/cases"))[0] == 403

    # Before signing: the form's text, the hotline's instructions, the caller masked.
    _, case = await cg.get(f"/api/department/cases/{ours}")
    assert case["caller"] == MASKED and case["caller_clear"] is False
    assert case["form"]["content"] == "珠江路夜市占道经营，噪音扰民"
    assert case["actions"] == ["sign", "return"]
    dispatch = next(f for f in case["timeline"] if f["kind"] == "loop.dispatch")
    assert dispatch["reason"] == "请核实并答复市民" and "by" not in dispatch
    assert [o["department_name"] for o in case["others"]] == ["南京市人力资源和社会保障局"]
    # Signed for, as the lead of a complaint: the department calls the caller back.
    _, case = await cg.post(f"/api/department/cases/{ours}/sign")
    assert case["dispatch_state"] == "signed" and case["state"] == "handling"
    assert case["caller"] == CALLER and case["caller_clear"] is True
    assert set(case["actions"]) == {"note", "reply", "return", "extension"}
    # The assisting department signs too, but the lead answers the caller: masked.
    _, assist = await rs.post(f"/api/department/cases/{ours}/sign")
    assert assist["role"] == "assist" and assist["caller"] == MASKED
    assert CALLER not in str(await rs.get(f"/api/department/cases/{ours}"))
    # Each reading and change is audited, saying whether the number was shown.
    views = [(u, d.get("after"), d["caller"])
             for u, _, n, d in await _audit(console, "case.view")]
    assert views == [("cg", None, "masked"), ("cg", "sign", "clear"), ("rs", "sign", "masked"),
                     ("rs", None, "masked")]
    changes = [(u, d["action"], d["state"]) for u, *_, d in await _audit(console, "case.loop")]
    assert changes == [("cg", "sign", "handling"), ("rs", "sign", "handling")]
    # Answered: masked again.
    _, case = await cg.post(f"/api/department/cases/{ours}/reply", {
        "text": "已清理占道摊点，已电话告知市民", "contacted": True})
    assert case["caller"] == MASKED and case["state"] == "replied"


@BOTH
async def test_a_department_works_a_case_by_the_page_api_and_a_retry_applies_once(console):
    await _directory(console)
    number = await _dispatched(console, "nj-chengguan")
    returned = await _dispatched(console, "nj-chengguan")
    cg = await console.user("cg")
    path = f"/api/department/cases/{number}"
    assert (await cg.post(f"{path}/reply", {"text": "x", "contacted": False}))[0] == 409
    status, case = await cg.post(f"{path}/sign", headers={"Idempotency-Key": "sign-1"})
    assert status == 200 and case["dispatch_state"] == "signed"
    status, again = await cg.post(f"{path}/sign", headers={"Idempotency-Key": "sign-1"})
    assert status == 200 and again["dispatch_state"] == "signed"  # the retry: no conflict
    status, case = await cg.post(f"{path}/note", {"text": "已派执法队员现场查看"})
    assert status == 200
    status, case = await cg.post(f"{path}/extension", {"days": 3, "reason": "需联合市场监管处理"})
    assert status == 200 and case["dispatches"][0]["extension"]["state"] == "requested"
    assert "extension" not in case["actions"]
    assert (await cg.post(f"{path}/extension", {"days": 0, "reason": "x"}))[0] == 422
    assert (await cg.post(f"{path}/note", {"text": "   "}))[0] == 422
    assert (await cg.post(f"{path}/sign", headers={"Idempotency-Key": "no spaces"}))[0] == 422
    reply = {"text": "已取缔占道摊点，并安排每日巡查", "contacted": True}
    for _ in range(2):  # the page retried (a lost answer): one reply
        status, case = await cg.post(f"{path}/reply", reply,
                                     headers={"Idempotency-Key": "reply-7f3a"})
        assert status == 200, case
    assert case["state"] == "replied"
    assert case["dispatches"][0]["reply"] == reply["text"]
    assert case["dispatches"][0]["contacted_caller"] is True
    kinds = [f["kind"] for f in case["timeline"]]
    assert kinds.count("loop.reply") == 1 and kinds.count("loop.sign") == 1
    own = [f for f in case["timeline"] if f["own"]]
    assert {f["kind"] for f in own} == {"loop.sign", "loop.note", "loop.request_extension",
                                        "loop.reply"}
    assert all(f["by"] == "cg" for f in own)
    assert case["actions"] == ["note"]  # answered: notes only, until the hotline reviews

    # 退单 needs its reason; then the case is the hotline's again (待改派).
    rpath = f"/api/department/cases/{returned}"
    assert (await cg.post(f"{rpath}/return", {}))[0] == 422
    status, case = await cg.post(f"{rpath}/return", {"reason": "属住建部门职责，建议改派"})
    assert status == 200 and case["state"] == "returned" and case["dispatch_state"] == "returned"
    assert case["actions"] == []
    _, doc = await cg.get("/api/department/cases?tab=returned")
    assert [c["number"] for c in doc["cases"]] == [returned]
    _, doc = await cg.get("/api/department/cases?tab=replied")
    assert [c["number"] for c in doc["cases"]] == [number]

    audited = [(u, n, d["action"]) for u, _, n, d in await _audit(console, "case.loop")]
    # Changes only (a retry that changed nothing is audited as a reading, case.view).
    assert audited == [("cg", number, "sign"), ("cg", number, "note"),
                       ("cg", number, "extension"), ("cg", number, "reply"),
                       ("cg", returned, "return")]


@BOTH
async def test_a_department_system_works_by_api_token_which_can_be_revoked(console):
    await _directory(console)
    number = await _dispatched(console, "nj-chengguan")
    theirs = await _dispatched(console, "nj-renshe")
    admin = await console.user("admin")
    status, doc = await admin.post("/api/directory/departments/nj-chengguan/tokens",
                                   {"label": "城管办件系统"})
    assert status == 200 and doc["token"].startswith("dpt_"), doc
    token, token_id = doc["token"], doc["issued"]["id"]
    # Only the hash is kept, and the list never shows the token.
    async with console.service.engine.connect() as c:
        stored = (await c.execute(sa.text("SELECT token_hash FROM department_tokens"))
                  ).scalar_one()
    assert token not in stored and len(stored) == 64
    _, doc = await admin.get("/api/directory/departments/nj-chengguan/tokens")
    assert token not in str(doc) and doc["tokens"][0]["label"] == "城管办件系统"

    system = await console.anonymous()
    auth = {"Authorization": f"Bearer {token}"}
    status, doc = await system.call("GET", "/api/dept/me", headers=auth)
    assert status == 200 and doc["department"]["id"] == "nj-chengguan", doc
    status, doc = await system.call("GET", "/api/dept/cases", headers=auth)
    assert [c["number"] for c in doc["cases"]] == [number]
    assert (await system.call("GET", f"/api/dept/cases/{theirs}", headers=auth))[0] == 404
    status, case = await system.call("POST", f"/api/dept/cases/{number}/sign", headers=auth)
    assert status == 200 and case["dispatch_state"] == "signed"  # no cookie, no CSRF
    reply = {"text": "已处理完毕，已回复市民", "contacted": True}
    for _ in range(3):  # the department's system retries: one reply
        status, case = await system.call("POST", f"/api/dept/cases/{number}/reply", reply,
                                         headers={**auth, "Idempotency-Key": "job-42"})
        assert status == 200, case
    assert [f["kind"] for f in case["timeline"]].count("loop.reply") == 1
    who = f"api:nj-chengguan#{token_id}"
    assert {f["by"] for f in case["timeline"] if f["own"]} == {who}
    assert [(u, r, d["via"]) for u, r, _, d in await _audit(console, "case.loop")] == [
        (who, "department", "api")] * 2  # the changes; the retries are readings

    # A wrong or missing token, another scheme, a session cookie: 401.
    for headers in ({"Authorization": "Bearer dpt_wrong"}, {},
                    {"Authorization": f"Basic {token}"}):
        status, doc = await system.call("GET", "/api/dept/cases", headers=headers)
        assert status == 401 and doc["error"] == "bad_token", doc
    cg = await console.user("cg")
    assert (await cg.get("/api/dept/cases"))[0] == 401

    # Over its rate: 429 with Retry-After, then revoked: 401 from the next request on.
    deps = console.console
    deps.web = deps.web.model_copy(update={"token_requests_per_minute": 1})
    try:
        resp = await system.client.get("/api/dept/me", headers=auth)
        if resp.status == 200:  # the minute turned: this one was the first of the next
            resp = await system.client.get("/api/dept/me", headers=auth)
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    finally:
        deps.web = deps.web.model_copy(update={"token_requests_per_minute": 0})
    status, doc = await admin.call("DELETE",
                                   f"/api/directory/departments/nj-chengguan/tokens/{token_id}")
    assert status == 200 and doc["revoked"]["revoked_by"] == "admin"
    status, doc = await system.call("GET", "/api/dept/cases", headers=auth)
    assert status == 401
    assert [d["token"] for *_, d in await _audit(console, "token.revoke")] == [token_id]
    # A deactivated department's tokens are refused too.
    _, doc = await admin.post("/api/directory/departments/nj-renshe/tokens", {})
    other = {"Authorization": f"Bearer {doc['token']}"}
    assert (await system.call("GET", "/api/dept/me", headers=other))[0] == 200
    await admin.post("/api/directory/departments/nj-renshe/state", {"active": False})
    assert (await system.call("GET", "/api/dept/me", headers=other))[0] == 401




@pytest.mark.slow
async def test_a_department_user_signs_for_a_case_and_answers_it_in_chromium(console, artifacts):

    await _directory(console)
    number = await _dispatched(console, "nj-chengguan")
    async with chromium() as browser:
        page = await new_page(browser, timezone_id="Asia/Shanghai")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
        await login(browser, console.base_url, "cg", page=page)
        await page.wait_for_url("**/departments")  # where a department user lands
        row = page.locator(f'#list tr[data-case="{number}"]')
        try:
            await row.wait_for()
        except Exception:
            raise AssertionError(f"no row; page errors: {errors}") from None
        assert await page.text_content("h1") == "承办单位工作台"
        assert await page.text_content("#dept-name") == "南京市城市管理局"
        text = await row.inner_text()
        for words in ("城乡建设 › 市容环卫 › 占道经营", "投诉", "待签收", "主办", "绿灯"):
            assert words in text, (words, text)
        deadline = await row.locator("td").nth(5).inner_text()
        assert re.fullmatch(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", deadline)
        assert "待办 (1)" in await page.inner_text("#tabs")
        await page.screenshot(path=str(artifacts / "department-cases.png"))

        await row.locator("a").click()
        await page.wait_for_function(
            f"() => document.querySelector('#d-number')?.textContent === '{number}'")
        assert await page.text_content("#d-caller") == MASKED
        assert await page.text_content("#d-content") == "珠江路夜市占道经营，噪音扰民"
        assert "南京 · 玄武区" in await page.inner_text("#detail")  # the district by its name
        assert CALLER not in await page.content()
        await page.click("#a-sign")
        await page.wait_for_function(
            "() => document.querySelector('#d-state')?.textContent === '办理中'")
        # Signed for, as the lead of a complaint: the number to call the caller back.
        assert (await page.text_content("#d-caller") or "").startswith(CALLER)
        assert await page.text_content("#a-msg") == "已签收"
        await page.fill("#a-reply-text", "已取缔占道摊点，并电话告知市民处理结果")
        await page.check("#a-contacted")
        await page.click("#a-reply")
        await page.wait_for_function(
            "() => document.querySelector('#d-state')?.textContent === '已答复'")
        assert await page.text_content("#d-case-state") == "待审核"
        assert "已答复 (1)" in await page.inner_text("#tabs")  # the list follows
        assert await page.text_content("#d-reply") == "已取缔占道摊点，并电话告知市民处理结果"
        assert await page.text_content("#d-caller") == MASKED
        timeline = await page.inner_text("#d-timeline")
        for words in ("派单", "签收", "答复", "请核实并答复市民"):
            assert words in timeline, (words, timeline)
        await page.screenshot(path=str(artifacts / "department-case-replied.png"),
                              full_page=True)
        assert errors == []
        await page.context.close()

        # The admin's side of the same page: the directory.
        page = await new_page(browser, timezone_id="Asia/Shanghai")
        await login(browser, console.base_url, "admin", page=page)
        await page.wait_for_url("**/wallboard")
        await page.goto(console.base_url + "/departments")
        await page.locator('#directory tr[data-dept="nj-chengguan"]').wait_for()
        await page.locator('#directory tr[data-dept="nj-chengguan"] button').nth(1).click()
        await page.locator("#picked").wait_for()
        await page.fill("#t-label", "城管办件系统")
        await page.locator("#picked button.primary").click()
        await page.locator("#issued").wait_for()
        assert (await page.text_content("#issued") or "").startswith("dpt_")
        await page.screenshot(path=str(artifacts / "department-directory.png"),
                              full_page=True)

        # A delivery the department's system refused to the end: on the dead-letter list,
        # sent again from it; the department's signing secret shown once, then rotated.
        async with console.service.store.sessions() as s, s.begin():
            dead = WebhookDelivery(idempotency_key=f"{number}:case.dispatch:1",
                                   department_id="nj-chengguan", event="case.dispatch",
                                   case_number=number, payload={"case": number}, state="dead",
                                   attempts=8, last_status=503, last_error="HTTP 503")
            s.add(dead)
        await page.goto(console.base_url + "/departments")
        row = page.locator(f'#dead-letters tr[data-delivery="{dead.id}"]')
        text = await row.inner_text()
        for words in ("南京市城市管理局", "case.dispatch", number, "已尝试 8 次", "HTTP 503"):
            assert words in text, (words, text)
        hook = page.locator('#hook-departments tr[data-hook="nj-chengguan"]')
        assert "\t1\t" in await hook.inner_text()  # one dead
        await hook.locator("button").click()
        assert len(await page.text_content("#hook-secret") or "") >= 32
        await page.screenshot(path=str(artifacts / "department-webhooks.png"), full_page=True)
        await row.locator("button").click()
        await page.locator("#admin-msg").get_by_text("已重新排队发送").wait_for()
        # Queued afresh (its attempts counted again): gone from the list, or back with fewer.
        await page.wait_for_function(
            f"() => !(document.querySelector('#dead-letters tr[data-delivery=\"{dead.id}\"]')"
            "?.textContent || '').includes('已尝试 8 次')")
        await page.context.close()

    view = await console.service.case_loop.view(number)
    lead = view["dispatches"][0]
    assert view["state"] == "replied" and lead["contacted_caller"] is True
