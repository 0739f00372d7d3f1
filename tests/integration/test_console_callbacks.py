"""Missed-call callbacks (漏接电话回拨): a caller who hangs up while queued gets a task; one
click on the console calls them back from the agent's softphone (AMI Originate); the outcome
and every attempt are on the case; attempts are bounded."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_desk.access import Scope
from common.facts import CallFact
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "13912345678"


async def test_missed_caller_is_called_back_from_the_agents_softphone(console, phones, sounds):
    svc = console.service
    agent = await console.user("agent1001")
    sup = await console.user("sup")
    phone = await console.agent_phone("1001", play=sounds["tone_agent"])
    status, doc = await agent.post("/api/console/pause", {"reason": "training"})
    assert status == 200, doc

    # The caller waits (the only agent is paused), then gives up.
    caller = await console.lab.caller(CALLER, play=sounds["caller_speech"])
    call = await console.lab.dial(caller, trunk="nanjing")
    await eventually(lambda: _waiting(svc), 30, what="the caller queued")
    await caller.hangup(call)
    tasks = await eventually(lambda: _pending(agent), 30, what="a callback task")
    task = tasks[0]
    assert task["caller"] == "139****5678" and task["city"] == "nanjing"
    assert task["attempts"] == 0 and task["max_attempts"] == svc.cfg.web.callback_attempts
    # Supervisors see the number in clear in the case; agents do not.
    status, detail = await agent.get(f"/api/cases/{task['case']}")
    assert detail["caller"] == "139****5678" and detail["outcome"] == "abandoned"
    status, detail = await sup.get(f"/api/cases/{task['case']}")
    assert detail["caller"] == CALLER and detail["callback"]["status"] == "pending"

    # One click: Asterisk rings the agent's softphone, the console answers it, and Asterisk
    # dials the caller (here: straight to the caller's SIP party).
    console.console.web = svc.cfg.web.model_copy(update={
        "callback_dial": f"PJSIP/trunk-carrier/sip:{{number}}@127.0.0.1:{caller.port}"})
    status, doc = await agent.post(f"/api/callbacks/{task['id']}/call")
    assert status == 200, doc
    assert doc["task"]["attempts"] == 1 and doc["task"]["status"] == "calling"
    status, doc = await agent.post(f"/api/callbacks/{task['id']}/call")
    assert status == 409 and doc["error"] == "busy"  # not twice at once
    ctl = console.controls[0]
    await eventually(lambda: _has(ctl), 30, what="the agent's softphone ringing")
    status, doc = await agent.post("/api/console/answer")
    assert status == 200, doc
    back = await asyncio.wait_for(caller.incoming.get(), 30)
    await caller.answer(back)
    await asyncio.wait_for(back.answered.wait(), 10)
    await asyncio.sleep(1.0)
    status, doc = await agent.post("/api/console/hangup")
    assert status == 200, doc
    await asyncio.wait_for(back.disconnected.wait(), 15)
    status, doc = await agent.post(f"/api/callbacks/{task['id']}/outcome",
                                   {"outcome": "reached", "note": "已回复"})
    assert status == 200 and doc["task"]["status"] == "done", doc
    status, doc = await agent.post(f"/api/callbacks/{task['id']}/call")
    assert status == 409 and doc["error"] == "finished"

    status, detail = await sup.get(f"/api/cases/{task['case']}")
    kinds = [e["kind"] for e in detail["timeline"]]
    assert "callback_1" in kinds and "callback_1_reached" in kinds, kinds
    assert [e["event"] for e in detail["callback"]["log"]] == ["dialing", "reached"]
    await caller.close()
    await phone.close()


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_callback_attempts_are_bounded_and_cases_searchable(console):
    svc = console.service
    agent = await console.user("agent1001")
    call_id = f"node1:test-{time.time_ns()}"
    now = time.time()
    svc.callbacks.max_attempts = 2
    for kind, data in (("arrived", {"caller": CALLER, "dialed": "12345"}),
                       ("routed", {"queue": "nanjing-general", "city": "nanjing"}),
                       ("queued", {"queue": "nanjing-general"}),
                       ("abandoned", {"hold_time": 20}), ("ended", {})):
        await svc.store.apply(CallFact(kind, call_id, "node1", now, data))
    await svc.drain()  # the callback worker has made the task from the abandon
    store = console.console.cases
    [task] = await store.callbacks(Scope.everything(), status="pending")
    assert task["max_attempts"] == 2
    assert await store.callback_for_call(call_id, 2) == {}  # once per case
    for attempt in (1, 2):
        t, number = await store.begin_callback(task["id"], "1001", Scope.everything())
        assert number == CALLER and t["attempts"] == attempt
        t = await store.finish_callback(task["id"], "no_answer", by="1001",
                                       scope=Scope.everything())
    assert t["status"] == "failed" and len(t["log"]) == 4
    status, doc = await agent.post(f"/api/callbacks/{task['id']}/call")
    assert status == 409 and doc["error"] == "finished", doc

    # The form and the search, on this database.
    number = task["case"]
    status, doc = await agent.put(f"/api/cases/{number}/form",
                                  {"category": "complaint", "subject": "噪音", "version": 0})
    assert status == 200 and doc["form"]["version"] == 1, doc
    status, doc = await agent.put(f"/api/cases/{number}/form",
                                  {"content": "晚上施工噪音", "version": 0})
    assert status == 409 and doc["error"] == "stale"
    today = time.strftime("%Y-%m-%d")
    for query, found in ((f"number=+86 139-1234-5678&from={today}", True),
                         ("number=13900000000", False), ("city=nanjing&category=complaint",
                                                          True),
                         ("category=help", False), ("status=open", True),
                         ("status=closed", False)):
        status, doc = await agent.get(f"/api/cases?{query}")
        assert status == 200, doc
        assert (number in [c["number"] for c in doc["cases"]]) == found, query
    status, doc = await agent.post(f"/api/cases/{number}/close")
    assert status == 200
    status, doc = await agent.post(f"/api/cases/{number}/close")
    assert status == 409 and doc["error"] == "closed"
    status, doc = await agent.get("/api/cases?status=closed")
    assert [c["number"] for c in doc["cases"]] == [number]


async def _waiting(svc) -> bool:
    return bool(await svc.live.waiting("nanjing-general"))


async def _pending(user):
    status, doc = await user.get("/api/callbacks?status=pending")
    return doc["callbacks"] if status == 200 and doc["callbacks"] else None


async def _has(ctl) -> bool:
    return ctl.current is not None
