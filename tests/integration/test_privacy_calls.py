"""A real call through Asterisk, end to end: the caller's number, name, what the agent wrote
and what was said are nowhere in clear — not in the database, not in Redis, not on the events
channel — each role sees what it may (agents masked, supervisors and admins per
``see_numbers``), exports are masked unless the role sees numbers, and every view, export and
change is in the audit log, which only admins and auditors read (and reading it is audited)."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest
import sqlalchemy as sa

from tests.support.console import CONSOLE_PASSWORD
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "13812345678"
MASKED = "138****5678"
NAME = "张三丰"
ADDRESS = "南京市玄武区珠江路88号"
CONTENT = "楼下施工扰民，请回电13812345678"
SAID = "我的电话是13812345678"


async def _all_db_text(engine) -> str:
    out = []
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in names:
            for row in (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all():
                out.append(repr(tuple(row)))
    return "\n".join(out)


async def _all_redis_text(redis, prefix: str) -> str:
    out = []
    async for key in redis.scan_iter(f"{prefix}:*"):
        kind = await redis.type(key)
        if kind == "string":
            out.append(f"{key}={await redis.get(key)}")
        elif kind == "hash":
            out.append(f"{key}={await redis.hgetall(key)}")
        elif kind == "set":
            out.append(f"{key}={await redis.smembers(key)}")
        elif kind == "zset":
            out.append(f"{key}={await redis.zrange(key, 0, -1)}")
        elif kind == "list":
            out.append(f"{key}={await redis.lrange(key, 0, -1)}")
        else:
            out.append(f"{key}:{kind}")
    return "\n".join(out)


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_a_real_call_is_private_masked_by_role_and_audited(console, phones, sounds):
    from agent_desk.web.auth import Users

    svc = console.service
    prefix = svc.cfg.redis.prefix
    await Users(svc.store.sessions).add("auditor", CONSOLE_PASSWORD, "auditor")
    agent = await console.user("agent1001")
    sup = await console.user("sup")
    admin = await console.user("admin")
    auditor = await console.user("auditor")

    # Everything published while the call runs.
    published: list[str] = []
    pubsub = svc.redis.pubsub()
    await pubsub.psubscribe(f"{prefix}:*")

    async def listen():
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None:
                published.append(str(msg["data"]))
    listener = asyncio.create_task(listen())

    phone = await console.lab.agent("1001", play=sounds["tone_agent"])
    caller = await console.lab.caller(CALLER, display_name=NAME, play=sounds["caller_speech"])
    call = await console.lab.dial(caller, trunk="nanjing")
    await asyncio.wait_for(call.answered.wait(), 40)
    # The agent's phone shows the caller masked and nameless (the console has the case).
    offered = await asyncio.wait_for(phone.incoming.get(), 10)
    shown = offered.record.remote_uri
    assert f"sip:{MASKED}@" in shown and CALLER not in shown and NAME not in shown, shown

    async def found():
        status, doc = await sup.get(f"/api/cases?number={CALLER}")
        return doc["cases"] if status == 200 and doc["cases"] else None
    case = (await eventually(found, 20, what="the case"))[0]
    number = case["number"]
    assert case["caller"] == CALLER  # supervisors see numbers (see_numbers)

    # The agent's screen pop: masked; reloaded twice, audited once.
    async def popped():
        status, doc = await agent.get("/api/console/state")
        return doc if status == 200 and doc.get("case") else None
    state = await eventually(popped, 20, what="the screen pop")
    assert state["case"]["number"] == number and state["case"]["caller"] == MASKED
    await agent.get("/api/console/state")
    status, doc = await agent.put(f"/api/cases/{number}/form", {
        "category": "complaint", "subject": "施工噪音", "address": ADDRESS,
        "content": CONTENT, "department": "城管局", "version": 0})
    assert status == 200 and doc["form"]["content"] == CONTENT, doc
    async with svc.store.sessions() as s:
        from cases.models import Case

        case_id = (await s.execute(sa.select(Case.id).where(Case.number == number))
                   ).scalar_one()
    # What was said, stored the way the transcription worker stores it.
    await svc.transcripts._store(case_id, [{"speaker": "caller", "start": 0.2, "end": 2.0,
                                            "text": SAID, "confidence": 0.9}])
    await caller.hangup(call)
    await asyncio.wait_for(call.disconnected.wait(), 15)

    async def ended():
        c = await svc.store.get(number)
        return c.call_state == "ended"
    await eventually(ended, 20, what="the case ended")

    # Each role sees what it may.
    _, a_view = await agent.get(f"/api/cases/{number}")
    _, s_view = await sup.get(f"/api/cases/{number}")
    assert a_view["caller"] == MASKED and s_view["caller"] == CALLER
    assert CALLER not in json.dumps(a_view["timeline"] + a_view["legs"], ensure_ascii=False)
    assert a_view["form"]["address"] == ADDRESS  # the agent wrote it: it stays readable
    _, a_tr = await agent.get(f"/api/cases/{number}/transcript")
    _, s_tr = await sup.get(f"/api/cases/{number}/transcript")
    assert a_tr["segments"][0]["text"] == "我的电话是138****5678"
    assert s_tr["segments"][0]["text"] == SAID
    _, listing = await agent.get(f"/api/cases?number={CALLER}")
    assert [c["caller"] for c in listing["cases"]] == [MASKED]
    status, doc = await agent.get("/api/export/cases?format=csv")
    assert status == 403
    status, doc = await auditor.get(f"/api/cases/{number}")
    assert status == 403  # auditors read the audit log, not cases

    # Exports: clear for roles in see_numbers, masked otherwise; each exported case audited.
    resp = await sup.client.get("/api/export/cases?format=csv&city=nanjing")
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert [(r["number"], r["caller"], r["address"]) for r in rows] == [
        (number, CALLER, ADDRESS)]
    console.console.web = svc.cfg.web.model_copy(update={"see_numbers": ["admin"]})
    status, doc = await sup.get("/api/export/cases?format=json")
    assert status == 200 and doc["clear"] is False
    assert [c["caller"] for c in doc["cases"]] == [MASKED]
    _, s_view = await sup.get(f"/api/cases/{number}")
    assert s_view["caller"] == MASKED
    console.console.web = svc.cfg.web
    status, doc = await sup.get("/api/export/cases?format=xml")
    assert status == 422

    status, doc = await agent.post(f"/api/cases/{number}/close")
    assert status == 200, doc

    # The audit log: only admins and auditors; reading it is audited too.
    status, doc = await agent.get(f"/api/audit?case={number}")
    assert status == 403
    status, doc = await admin.get(f"/api/audit?case={number}")
    assert status == 200, doc
    got = sorted((e["user"], e["role"], e["action"]) for e in doc["entries"])
    assert got == sorted([
        ("admin", "admin", "audit.read"),
        ("agent1001", "agent", "case.screen_pop"), ("agent1001", "agent", "case.form"),
        ("agent1001", "agent", "case.view"), ("agent1001", "agent", "case.transcript"),
        ("agent1001", "agent", "case.close"),
        ("sup", "supervisor", "case.view"), ("sup", "supervisor", "case.view"),
        ("sup", "supervisor", "case.transcript"),
        ("sup", "supervisor", "case.export"), ("sup", "supervisor", "case.export")]), got
    assert all(e["address"] == "127.0.0.1" and e["at"] for e in doc["entries"])
    form_entry = next(e for e in doc["entries"] if e["action"] == "case.form")
    assert form_entry["detail"]["fields"] == ["address", "category", "content", "department",
                                              "subject"]
    status, doc = await auditor.get("/api/audit?user=agent1001&action=cases.search")
    assert status == 200 and doc["total"] == 1
    assert doc["entries"][0]["detail"]["by_number"] is True
    status, doc = await auditor.get("/api/audit?action=audit.read")
    assert {(e["user"], e["detail"]["filters"].get("case")) for e in doc["entries"]} >= {
        ("admin", number), ("auditor", None)}
    status, doc = await auditor.get("/api/audit?action=gossip")
    assert status == 422

    # Nothing personal in clear: not in the database, not in Redis, not on the channels.
    await svc.drain()
    listener.cancel()
    await pubsub.aclose()
    db_text = await _all_db_text(svc.engine)
    redis_text = await _all_redis_text(svc.redis, prefix)
    for secret in (CALLER, NAME, ADDRESS, CONTENT, SAID):
        assert secret not in db_text, f"{secret} in the database"
        assert secret not in redis_text, f"{secret} in Redis"
        assert not [m for m in published if secret in m], f"{secret} published"
    assert published and MASKED in "".join(published)  # the wallboard got masked callers
    await caller.close()
    await phone.close()
