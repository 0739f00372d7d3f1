"""Need-to-know (issue 15, High 1), through the real console over HTTP on the real service:
an agent sees the case of their current call, the cases they answered and their current
caller's earlier cases — nothing else, by case number or by caller number; recordings and
the form's history are for supervisors; supervisors see only their city's cases, province
users every city's; a closed case's form is frozen, and each change of a form is kept as an
encrypted, append-only version whose first text a supervisor can still read."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from agent_desk.web.auth import Users
from common.facts import CallFact
from tests.support.console import CONSOLE_PASSWORD
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk]

CALLER = "13912348888"   # calls nanjing, then suzhou, then nanjing again
OTHER = "13700001111"
MASKED = "139****8888"


async def _case(svc, caller: str, city: str, agent: str | None) -> str:
    """A case as the call tracker leaves it: routed to the city's queue, answered by the
    agent (or abandoned), ended."""
    call_id = f"node1:access-{time.time_ns()}"
    now = time.time()
    facts = [("arrived", {"caller": caller, "dialed": "12345"}),
             ("routed", {"queue": f"{city}-general", "city": city}),
             ("queued", {"queue": f"{city}-general"})]
    facts += ([("answered", {"agent": agent, "uniqueid": f"u-{time.time_ns()}",
                             "hold_time": 2})] if agent else [("abandoned", {"hold_time": 9})])
    facts.append(("ended", {}))
    for kind, data in facts:
        await svc.store.apply(CallFact(kind, call_id, "node1", now, data))
    case = await svc.store.by_call(call_id)
    assert case is not None
    return str(case.number)


async def _numbers(user, query: str = "") -> set[str]:
    status, doc = await user.get(f"/api/cases?limit=200{query}")
    assert status == 200, doc
    return {c["number"] for c in doc["cases"]}


async def _city_users(console) -> None:
    users = Users(console.service.store.sessions)
    await users.add("sup-nj", CONSOLE_PASSWORD, "supervisor", city="nanjing")
    await users.add("sup-sz", CONSOLE_PASSWORD, "supervisor", city="suzhou")


async def test_an_agent_sees_only_the_cases_they_answered_and_their_citys_callbacks(console):
    svc = console.service
    mine = await _case(svc, CALLER, "nanjing", "1001")
    colleague = await _case(svc, CALLER, "nanjing", "1002")
    suzhou = await _case(svc, CALLER, "suzhou", "2001")
    missed = await _case(svc, OTHER, "suzhou", None)  # on suzhou's callback list
    to_call_back = await _case(svc, OTHER, "nanjing", None)  # on nanjing's
    await svc.drain()  # the callback worker has made both tasks
    agent = await console.user("agent1001")

    # Search: by the caller's number, by filters, or nothing at all.
    assert await _numbers(agent, f"&number={CALLER}") == {mine}
    assert await _numbers(agent) == {mine, to_call_back}
    assert await _numbers(agent, "&city=suzhou") == set()
    assert await _numbers(agent, f"&number={OTHER}") == {to_call_back}
    status, doc = await agent.get("/api/callbacks")
    assert [t["case"] for t in doc["callbacks"]] == [to_call_back]
    # The case, its transcript, its form and closing: 404, as if it did not exist.
    for number in (colleague, suzhou, missed):
        for path in (f"/api/cases/{number}", f"/api/cases/{number}/transcript"):
            status, doc = await agent.get(path)
            assert status == 404 and doc["error"] == "not_found", (path, doc)
        status, doc = await agent.put(f"/api/cases/{number}/form", {"subject": "改掉"})
        assert status == 404, doc
        status, doc = await agent.post(f"/api/cases/{number}/close")
        assert status == 404, doc
    # A guess at a number in the sequence answers like a number that does not exist.
    status, _ = await agent.get("/api/cases/20990101000001")
    assert status == 404
    # Their own case: yes (masked).
    status, doc = await agent.get(f"/api/cases/{mine}")
    assert status == 200 and doc["caller"] == MASKED and doc["earlier"] == []
    # Recordings and the form's history are not for agents at all: 403 for the route.
    status, doc = await agent.get(f"/api/recordings/{mine}/x.wav")
    assert status == 403 and doc["error"] == "forbidden", doc
    status, doc = await agent.get(f"/api/cases/{mine}/form/versions")
    assert status == 403, doc
    status, doc = await agent.get("/api/export/cases?format=json")
    assert status == 403, doc
    # Nothing of the refused cases reached the audit log as a view.
    async with svc.store.sessions() as s:
        viewed = (await s.execute(sa.text(
            "SELECT case_number FROM audit_log WHERE action = 'case.view' "
            "AND username = 'agent1001'"))).scalars().all()
    assert set(viewed) == {mine}
    # The city's callback list: the agent rings those callers back, so may read the case.
    status, doc = await agent.get(f"/api/cases/{to_call_back}")
    assert status == 200 and doc["callback"]["status"] == "pending"


async def test_supervisors_see_their_city_and_province_users_every_city(console):
    svc = console.service
    await _city_users(console)
    nj1 = await _case(svc, CALLER, "nanjing", "1001")
    nj2 = await _case(svc, OTHER, "nanjing", "1002")
    sz = await _case(svc, CALLER, "suzhou", "2001")
    sup_nj, sup_sz = await console.user("sup-nj"), await console.user("sup-sz")
    province = await console.user("sup")  # no city given: the province
    admin = await console.user("admin")

    assert await _numbers(sup_nj) == {nj1, nj2}
    assert await _numbers(sup_nj, f"&number={CALLER}") == {nj1}
    assert await _numbers(sup_nj, "&city=suzhou") == set()
    assert await _numbers(sup_sz) == {sz}
    assert await _numbers(province) == {nj1, nj2, sz}
    status, doc = await sup_nj.get(f"/api/cases/{sz}")
    assert status == 404, doc
    status, doc = await sup_sz.put(f"/api/cases/{nj1}/form", {"subject": "改掉"})
    assert status == 404, doc
    status, doc = await sup_nj.get(f"/api/cases/{nj1}")
    assert status == 200 and doc["earlier"] == []  # the suzhou case of the caller: not here
    status, doc = await province.get(f"/api/cases/{nj1}")
    assert [e["case"] for e in doc["earlier"]] == [sz]
    status, doc = await sup_nj.get("/api/export/cases?format=json")
    assert status == 200 and {c["number"] for c in doc["cases"]} == {nj1, nj2}

    # The admin puts a user in a city through the API (a city of the configuration only).
    status, doc = await admin.post("/api/users", {
        "username": "sup-x", "password": CONSOLE_PASSWORD, "role": "supervisor",
        "city": "atlantis"})
    assert status == 422 and "city" in doc["message"], doc
    status, doc = await admin.post("/api/users", {
        "username": "sup-nj", "password": CONSOLE_PASSWORD, "role": "supervisor",
        "city": "province"})
    assert status == 200, doc
    # Saving the user is a reset: the old session ends (docs/security.md), the new one sees
    # every city.
    status, doc = await sup_nj.get("/api/cases?limit=200")
    assert status == 401, doc
    sup_nj = await console.user("sup-nj")
    assert await _numbers(sup_nj) == {nj1, nj2, sz}
    # A password reset without a city keeps it.
    status, doc = await admin.post("/api/users", {
        "username": "sup-sz", "password": CONSOLE_PASSWORD, "role": "supervisor"})
    assert status == 200, doc
    assert await _numbers(await console.user("sup-sz")) == {sz}


async def test_a_closed_cases_form_is_frozen(console):
    number = await _case(console.service, CALLER, "nanjing", "1001")
    agent, sup = await console.user("agent1001"), await console.user("sup")
    status, doc = await agent.put(f"/api/cases/{number}/form", {"content": "原始诉求"})
    assert status == 200, doc
    status, doc = await agent.post(f"/api/cases/{number}/close")
    assert status == 200, doc
    for user in (agent, sup):
        status, doc = await user.put(f"/api/cases/{number}/form", {"content": "改写"})
        assert status == 409 and doc["error"] == "closed", doc
    status, doc = await sup.get(f"/api/cases/{number}")
    assert doc["form"]["content"] == "原始诉求" and doc["form"]["version"] == 1


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_every_change_of_a_form_is_an_encrypted_version(console):
    svc = console.service
    number = await _case(svc, CALLER, "nanjing", "1001")
    agent, sup = await console.user("agent1001"), await console.user("sup")
    first = "楼下饭店油烟扰民，已持续三个月"
    status, doc = await agent.put(f"/api/cases/{number}/form", {
        "category": "complaint", "subject": "油烟", "content": first, "version": 0})
    assert status == 200 and doc["form"]["version"] == 1, doc
    status, doc = await sup.put(f"/api/cases/{number}/form", {
        "content": "来电人称问题已解决", "version": 1})
    assert status == 200 and doc["form"]["version"] == 2, doc

    # Each change is a row of its own, encrypted: neither text is in clear in the database.
    async with svc.store.sessions() as s:
        rows = (await s.execute(sa.text(
            "SELECT v.version, v.values_enc, v.saved_by FROM case_form_versions v "
            "JOIN cases c ON c.id = v.case_id WHERE c.number = :n ORDER BY v.version"),
            {"n": number})).all()
    assert [(r[0], r[2]) for r in rows] == [(1, "agent1001"), (2, "sup")]
    for r in rows:
        assert "油烟" not in r[1] and "解决" not in r[1] and "content" not in r[1]
    # The first text is still readable, by a supervisor.
    status, doc = await sup.get(f"/api/cases/{number}/form/versions")
    assert status == 200, doc
    versions = doc["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["values"]["content"] == first and versions[0]["saved_by"] == "agent1001"
    assert versions[1]["fields"] == ["content"]
    assert versions[1]["values"]["content"] == "来电人称问题已解决"

    # Closed: the form is frozen, for everyone, and nothing is appended.
    status, doc = await agent.post(f"/api/cases/{number}/close")
    assert status == 200, doc
    for user in (agent, sup):
        status, doc = await user.put(f"/api/cases/{number}/form", {"content": "改写"})
        assert status == 409 and doc["error"] == "closed", doc
    status, doc = await sup.get(f"/api/cases/{number}/form/versions")
    assert len(doc["versions"]) == 2
    status, doc = await agent.get(f"/api/cases/{number}")
    assert doc["form"]["content"] == "来电人称问题已解决"


@pytest.mark.slow
async def test_during_a_call_the_agent_sees_the_callers_earlier_cases_of_the_city(
        console, phones, sounds):
    svc = console.service
    earlier_nj = await _case(svc, CALLER, "nanjing", "1002")   # a colleague's
    earlier_sz = await _case(svc, CALLER, "suzhou", "2001")    # another city's
    unrelated = await _case(svc, OTHER, "nanjing", "1002")
    agent = await console.user("agent1001")
    status, _ = await agent.get(f"/api/cases/{earlier_nj}")
    assert status == 404  # not before the call

    phone = await console.lab.agent("1001", play=sounds["tone_agent"])
    caller = await console.lab.caller(CALLER, play=sounds["caller_speech"])
    call = await console.lab.dial(caller, trunk="nanjing")
    await asyncio.wait_for(call.answered.wait(), 40)

    async def popped():
        status, doc = await agent.get("/api/console/state")
        return doc["case"] if status == 200 and doc.get("case") else None
    pop = await eventually(popped, 20, what="the screen pop")
    current = pop["number"]
    # The screen pop lists the caller's earlier cases of this city, not another city's.
    assert [e["case"] for e in pop["earlier"]] == [earlier_nj], pop["earlier"]
    status, doc = await agent.get(f"/api/cases/{earlier_nj}")
    assert status == 200 and doc["caller"] == MASKED
    assert await _numbers(agent, f"&number={CALLER}") == {current, earlier_nj}
    for number in (earlier_sz, unrelated):
        status, _ = await agent.get(f"/api/cases/{number}")
        assert status == 404, number

    await caller.hangup(call)
    await asyncio.wait_for(call.disconnected.wait(), 15)

    async def off_the_call():
        status, doc = await agent.get("/api/console/state")
        return status == 200 and doc["call"] is None
    await eventually(off_the_call, 20, what="the call gone from the agent's console")
    # After the call: their own case stays, the caller's other cases are gone again.
    status, _ = await agent.get(f"/api/cases/{current}")
    assert status == 200
    status, _ = await agent.get(f"/api/cases/{earlier_nj}")
    assert status == 404
    await caller.close()
    await phone.close()


def test_web_user_command_puts_a_user_in_a_city(tmp_path):
    from lab.harness import REPO, lab_config_toml

    cfg_path = tmp_path / "hotline.toml"
    cfg_path.write_text(lab_config_toml(tmp_path / "data"), encoding="utf-8")
    env = {**os.environ, "HOTLINE_NEW_PASSWORD": "a-long-password-1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "hotline.cli", "--config", str(cfg_path),
                               "web", "user", *args], capture_output=True, text=True,
                              timeout=120, cwd=REPO, env=env)

    ok = run("li", "--role", "supervisor", "--city", "suzhou")
    assert ok.returncode == 0, ok.stderr
    bad = run("zhao", "--role", "supervisor", "--city", "atlantis")
    assert bad.returncode == 2 and "--city" in bad.stderr
    ok = run("li", "--role", "supervisor")  # a password reset keeps the city
    assert ok.returncode == 0, ok.stderr
    db = sqlite3.connect(tmp_path / "data" / "hotline.db")
    rows = db.execute("select username, city from web_users").fetchall()
    db.close()
    assert rows == [("li", "suzhou")]
