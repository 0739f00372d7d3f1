"""Cases that arrive without a call (issue 16 item 6), through the real service and console
over HTTP (SQLite and PostgreSQL, real Redis): the public web form makes a case in 受理 with
channel "web", its text encrypted at rest, found by the hotline's case search; the form is
limited per client address and per phone number (429, in Chinese); bad input is refused
naming the field; the channels' API takes a case once per Idempotency-Key, refuses bad and
revoked tokens and shows a channel its own cases only; the status page shows the reply only
after the hotline's review and tells nothing to a wrong answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import pytest
import sqlalchemy as sa

from agent_desk.intake.cli import run as intake_cli
from cases.loop import states as st
from cases.loop.store import DepartmentEntry, Details
from common.privacy import PersonalData
from common.rekey import rekey
from hotline.privacy import rekey_tables, retention_job

pytestmark = [pytest.mark.asterisk]

PHONE = "138-1234-5678"
DIGITS = "13812345678"
FORM = {"name": "张秀英", "phone": PHONE, "city": "nanjing", "appeal_type": "complaint",
        "matter": "urban.sanitation.street_vending", "subject": "珠江路夜市占道经营",
        "address": "南京市玄武区珠江路88号", "consent": True,
        "content": "每晚十点后摊贩占用人行道，噪音扰民，请处理。"}
SECRETS = (FORM["name"], FORM["subject"], FORM["address"], FORM["content"], DIGITS)
SUP = st.Actor("sup", "supervisor")
CG = st.Actor("cg-user", "department", "nj-chengguan")
BOTH = pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)


async def _dump(engine) -> str:
    """Every row of every table, as text."""
    out = []
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in names:
            for row in (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all():
                out.append(f"{name}: {tuple(row)!r}")
    return "\n".join(out)


async def _count(engine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def _submit(console, body=None, **changes):
    u = await console.anonymous()
    return await u.post("/api/intake/web", {**(body or FORM), **changes})


@BOTH
async def test_a_web_submission_is_an_encrypted_case_in_the_loop(console):
    svc, deps = console.service, console.console
    status, doc = await _submit(console)
    assert status == 200, doc
    number, code = doc["number"], doc["query_code"]
    assert doc["status"] == "accepted" and len(code) == 8

    loop = await deps.loop.view(number)
    assert loop["state"] == "accepted" and loop["channel"] == "web" and loop["city"] == "nanjing"
    assert [f["kind"] for f in loop["timeline"]] == ["loop.accepted"]

    # Nothing the citizen wrote is stored in clear, anywhere.
    dump = await _dump(svc.engine)
    for secret in SECRETS:
        assert secret not in dump, secret

    # The hotline finds it by the caller's number and sees the form as written.
    sup = await console.user("sup")
    status, found = await sup.get(f"/api/cases?number={DIGITS}")
    assert status == 200 and [c["number"] for c in found["cases"]] == [number]
    assert found["cases"][0]["subject"] == FORM["subject"]
    status, case = await sup.get(f"/api/cases/{number}")
    assert status == 200, case
    assert case["caller"] == DIGITS and case["status"] == "open"
    assert {k: case["form"][k] for k in ("category", "subject", "address", "content")} == {
        "category": "complaint", "subject": FORM["subject"], "address": FORM["address"],
        "content": FORM["content"]}
    status, intake = await sup.get(f"/api/cases/{number}/intake")
    assert status == 200, intake
    assert intake["channel"] == "web" and intake["name"] == FORM["name"]
    assert intake["matter_hint"] == FORM["matter"] and intake["consent_version"] == "2026-01"
    status, versions = await sup.get(f"/api/cases/{number}/form/versions")
    assert versions["versions"][0]["saved_by"] == "web"
    assert versions["versions"][0]["values"]["content"] == FORM["content"]
    # Written with its audit entry; the console's reading of the intake record is audited.
    admin = await console.user("admin")
    status, audit = await admin.get(f"/api/audit?case={number}")
    actions = {(e["action"], e["user"]) for e in audit["entries"]}
    assert ("case.form", "web") in actions and ("case.view", "sup") in actions

    # The same caller again: a repeat complaint, linked when the hotline classifies it.
    status, again = await _submit(console, subject="珠江路夜市又占道了")
    assert status == 200, again
    view = await deps.loop.act(again["number"], SUP, st.Command("classify"), Details(
        appeal_type="complaint", matter=FORM["matter"], district="xuanwu",
        address=FORM["address"]))
    assert view["timeline"][-1]["repeats"] == [number]


async def test_bad_input_is_refused_naming_the_field(console):
    svc = console.service
    cases_before = await _count(svc.engine, "cases")
    # The page itself: anyone may open it, under the console's CSP.
    resp = await (await console.anonymous()).client.get("/intake")
    assert resp.status == 200 and "intake.js" in await resp.text()
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    bad = {
        "phone": ({"phone": "110"}, "联系电话（phone）"),
        "phone format": ({"phone": "call me"}, "联系电话（phone）"),
        "no phone": ({"phone": None}, "联系电话（phone）"),
        "city": ({"city": "beijing"}, "所在城市（city）"),
        "matter group": ({"matter": "urban.sanitation"}, "事项（matter）"),
        "appeal type": ({"appeal_type": "gossip"}, "诉求类型（appeal_type）"),
        "subject": ({"subject": "长" * 129}, "标题（subject）：不能超过 128 个字"),
        "blank content": ({"content": "  \n "}, "诉求内容（content）：不能为空"),
        "content": ({"content": "长" * 4001}, "诉求内容（content）"),
        "consent": ({"consent": False}, "同意声明（consent）"),
        "unknown field": ({"email": "a@b.c"}, "（email）"),
        "honeypot": ({"website": "http://spam.example"}, "提交未通过校验"),
    }
    u = await console.anonymous()
    for what, (change, words) in bad.items():
        body = {k: v for k, v in {**FORM, **change}.items() if v is not None}
        status, doc = await u.post("/api/intake/web", body)
        assert status == 422, (what, doc)
        assert doc["error"] == "invalid" and words in doc["message"], (what, doc)
    # A body over the form's limit is refused before it is read.
    status, doc = await u.post("/api/intake/web", raw=json.dumps(
        {**FORM, "content": "x" * 40_000}).encode())
    assert status == 413, doc
    status, doc = await u.post("/api/intake/status", {"number": "1"})
    assert status == 422 and "phone" in doc["message"] and "code" in doc["message"]
    assert await _count(svc.engine, "cases") == cases_before


async def test_submissions_are_limited_per_phone_number_and_per_address(console, redis):
    svc, deps = console.service, console.console
    deps.cfg = deps.cfg.model_copy(update={"intake": deps.cfg.intake.model_copy(update={
        "submissions_per_number": 2, "submissions_per_address": 4})})
    client = (await console.anonymous()).client

    async def post(phone: str):
        resp = await client.post("/api/intake/web", json={**FORM, "phone": phone})
        return resp.status, await resp.json(), resp.headers

    for _ in range(2):
        assert (await post(PHONE))[0] == 200
    status, doc, headers = await post("+86 13812345678")  # the same number, written otherwise
    assert status == 429 and doc["error"] == "rate_limited", doc
    assert doc["message"].startswith("提交过于频繁：该号码已达到提交次数上限")
    assert 3000 < int(headers["Retry-After"]) <= 3600
    for phone in ("13900001111", "025-84001234"):  # other numbers, the same address
        assert (await post(phone))[0] == 200
    status, doc, _ = await post("13700002222")
    assert status == 429 and "您所在的网络已达到提交次数上限" in doc["message"], doc
    assert await _count(svc.engine, "intake_records") == 4
    # The counters are in Redis, keyed by hashes: no number, no address.
    keys = [k async for k in redis.scan_iter(f"{svc.cfg.redis.prefix}:intake:*")]
    assert len(keys) >= 4
    assert not [k for k in keys if "1381234" in k or "127.0.0.1" in k]


@BOTH
async def test_the_status_page_shows_the_reply_after_review_and_nothing_to_a_wrong_answer(
        console):
    deps = console.console
    await deps.loop.upsert_departments([
        DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing")])
    status, doc = await _submit(console)
    number, code = doc["number"], doc["query_code"]
    u = await console.anonymous()

    async def query(**body):
        return await u.post("/api/intake/status", {"number": number, **body})

    status, view = await query(phone=PHONE)
    assert status == 200, view
    assert view["status"] == "accepted" and view["channel"] == "web" and view["reply"] is None
    status, by_code = await query(code=code.lower()[:4] + "-" + code[4:])
    assert status == 200 and by_code == view
    # A wrong number, a wrong code and a case that does not exist get the same answer.
    refusals = [await query(phone="13900000000"), await query(code="ABCDEFGH"),
                await u.post("/api/intake/status", {"number": "20990101999999",
                                                    "phone": PHONE})]
    assert {s for s, _ in refusals} == {404}
    assert len({d["message"] for _, d in refusals}) == 1
    assert refusals[0][1]["message"].startswith("未找到该工单")

    # Through the loop: the department's reply is not public until the hotline reviews it.
    await deps.loop.act(number, SUP, st.Command("classify"), Details(
        appeal_type="complaint", matter=FORM["matter"], district="xuanwu"))
    await deps.loop.act(number, SUP, st.Command("dispatch", lead="nj-chengguan"))
    await deps.loop.act(number, CG, st.Command("sign"))
    reply = "已安排执法队员每晚巡查，占道摊点已清理。"
    await deps.loop.act(number, CG, st.Command("reply", reason=reply), Details(contacted=True))
    status, view = await query(phone=DIGITS)
    assert view["status"] == "processing" and view["reply"] is None
    assert view["department_name"] == "南京市城市管理局"
    assert view["matter_name"] == "城乡建设 › 市容环卫 › 占道经营"
    await deps.loop.act(number, SUP, st.Command("review", accept=True))
    status, view = await query(code=code)
    assert status == 200 and view["status"] == "answered" and view["reply"] == reply
    assert view["replied_at"]

    # Wrong answers are counted per case (two above): after the fifth, the case is not
    # answered for the window, even to the right number.
    for _ in range(3):
        assert (await query(phone="13700000000"))[0] == 404
    status, doc = await query(phone=PHONE)
    assert status == 429 and doc["message"].startswith("查询信息多次不符"), doc


@BOTH
async def test_channel_api_takes_a_case_once_per_key_with_a_valid_token(console, capsys):
    svc, deps = console.service, console.console
    admin = await console.user("admin")
    status, issued = await admin.post("/api/intake/tokens", {"channel": "wechat",
                                                             "name": "微信公众号"})
    assert status == 200 and issued["token"].startswith("hli_wechat_"), issued
    assert issued["token"] not in await _dump(svc.engine)  # only its hash is kept
    # A second channel's token, from the command line.
    args = argparse.Namespace(action="token", channel="miniprogram", name="小程序", id=None,
                              json=True)
    assert await intake_cli(svc.cfg, args) == 0
    mini = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["token"]

    client = (await console.anonymous()).client
    body = {"caller": DIGITS, "city": "suzhou", "subject": "公交站台破损",
            "content": "观前街公交站台顶棚破损漏雨。", "external_ref": "WX-2026-0001",
            "appeal_type": "help"}

    async def send(token: str, key: str | None, doc=None):
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        resp = await client.post("/api/intake/cases", json=doc or body, headers=headers)
        return resp.status, await resp.json()

    first = await send(issued["token"], "wx-key-0001")
    assert first[0] == 200 and first[1]["replayed"] is False, first
    number = first[1]["number"]
    again = await send(issued["token"], "wx-key-0001")
    assert again[0] == 200 and again[1]["number"] == number and again[1]["replayed"] is True
    # Retried at once, several times over: still one case.
    racing = await asyncio.gather(*(send(issued["token"], "wx-key-0002") for _ in range(5)))
    assert {s for s, _ in racing} == {200}, racing
    assert len({d["number"] for _, d in racing}) == 1
    assert await _count(svc.engine, "intake_records") == 2
    # The key with another request is refused; no key is refused.
    status, doc = await send(issued["token"], "wx-key-0001", {**body, "subject": "别的事"})
    assert status == 422 and "Idempotency-Key" in doc["message"], doc
    status, doc = await send(issued["token"], None)
    assert status == 422 and "Idempotency-Key" in doc["message"], doc

    loop = await deps.loop.view(number)
    assert loop["state"] == "accepted" and loop["channel"] == "wechat"
    assert loop["city"] == "suzhou"

    # A channel polls its own cases; another channel's or the web's are not found.
    resp = await client.get(f"/api/intake/cases/{number}",
                            headers={"Authorization": f"Bearer {issued['token']}"})
    view = await resp.json()
    assert resp.status == 200 and view["status"] == "accepted", view
    assert view["external_ref"] == "WX-2026-0001" and view["channel"] == "wechat"
    resp = await client.get(f"/api/intake/cases/{number}",
                            headers={"Authorization": f"Bearer {mini}"})
    assert resp.status == 404
    web_case = (await _submit(console))[1]["number"]
    resp = await client.get(f"/api/intake/cases/{web_case}",
                            headers={"Authorization": f"Bearer {issued['token']}"})
    assert resp.status == 404

    # Bad, missing and revoked tokens: 401.
    assert (await send("hli_wechat_not-a-token", "wx-key-0003"))[0] == 401
    resp = await client.post("/api/intake/cases", json=body,
                             headers={"Idempotency-Key": "wx-key-0003"})
    assert resp.status == 401
    status, revoked = await admin.post(f"/api/intake/tokens/{issued['id']}/revoke")
    assert status == 200 and revoked["revoked_at"], revoked
    status, doc = await send(issued["token"], "wx-key-0003")
    assert status == 401 and doc["error"] == "bad_token", doc
    status, doc = await send(issued["token"], "wx-key-0001")  # even a replay
    assert status == 401
    assert (await send(mini, "mp-key-0001"))[0] == 200
    status, listed = await admin.get("/api/intake/tokens")
    assert [t["channel"] for t in listed["tokens"]] == ["wechat", "miniprogram"]
    assert all("token" not in t for t in listed["tokens"])
    # Only admins manage tokens.
    sup = await console.user("sup")
    assert (await sup.post("/api/intake/tokens", {"channel": "app", "name": "x"}))[0] == 403


async def test_key_rotation_and_the_retention_job_reach_the_citizens_name(console):
    svc = console.service
    status, doc = await _submit(console)
    number = doc["number"]

    async def stored_name() -> str | None:
        async with svc.engine.connect() as conn:
            return (await conn.execute(sa.text(
                "SELECT r.name_enc FROM intake_records r JOIN cases c ON c.id = r.case_id "
                "WHERE c.number = :n"), {"n": number})).scalar_one()

    # hotline privacy rekey: the name is re-encrypted under the new key.
    new_key = "the-new-data-key-0123456789abcdef"
    out = await rekey(svc.store.sessions, rekey_tables(
        PersonalData(new_key, previous=[os.environ["HOTLINE_DATA_KEY"]])))
    assert out["intake_records"] == 1
    assert PersonalData(new_key).decrypt(await stored_name()) == FORM["name"]
    async with svc.engine.begin() as conn:  # the case is older than the retention period
        await conn.execute(sa.text(
            "UPDATE cases SET created_at = :old WHERE number = :n"), {
            "old": "2020-01-01 00:00:00", "n": number})
    report = await retention_job(svc.cfg, svc.store.sessions, svc.store).run()
    assert report.cases == 1
    assert await stored_name() is None
    sup = await console.user("sup")
    status, intake = await sup.get(f"/api/cases/{number}/intake")
    assert status == 200 and intake["name"] == "" and intake["channel"] == "web"
