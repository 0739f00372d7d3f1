"""Issue 15, Medium 6: a callback dials only a Chinese mobile or landline number. A spoofed
short code, emergency, premium or international caller ID is refused before Asterisk hears of
it, and the dialplan filters the number again: characters such as ``&`` cannot add a second
channel to the Dial."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_desk.access import Scope
from common.facts import CallFact
from tests.support.asterisk import leftovers, wait_clean
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk]


async def _task_of(console, call_id: str) -> dict:
    """The callback task the worker made from the call's abandon (one per case)."""
    await console.service.drain()
    case = await console.service.store.by_call(call_id)
    tasks = await console.console.cases.callbacks(Scope.everything(), status="pending")
    return next(t for t in tasks if t["case"] == case.number)


@pytest.mark.parametrize("spoofed", ["110", "12345", "+12025550143", "106900001234",
                                     "13912345678&PJSIP/1002", "13912345678,tT"])
async def test_refused_numbers_never_reach_asterisk(console, spoofed):
    svc = console.service
    agent = await console.user("agent1001")
    call_id = f"node1:spoofed-{time.time_ns()}"
    for kind, data in (("arrived", {"caller": spoofed, "dialed": "12345"}),
                       ("routed", {"queue": "nanjing-general", "city": "nanjing"}),
                       ("queued", {"queue": "nanjing-general"}),
                       ("abandoned", {"hold_time": 20}), ("ended", {})):
        await svc.store.apply(CallFact(kind, call_id, "node1", time.time(), data))
    task = await _task_of(console, call_id)

    status, doc = await agent.post(f"/api/callbacks/{task['id']}/call")
    assert status == 409 and doc["error"] == "number_not_allowed", doc
    assert spoofed not in doc["message"]
    # Nothing was originated: no channel at all (the agent's phone is not even rung).
    assert "channels" not in await leftovers(console.lab)
    status, doc = await agent.get("/api/callbacks?status=pending")
    mine = next(t for t in doc["callbacks"] if t["id"] == task["id"])
    assert mine["attempts"] == 1


async def test_the_dialplan_dials_digits_only_and_never_a_second_channel(console):
    """The service already refuses such a number; this is the dialplan's own defence, as if a
    number with ``&`` reached it: [hotline-callback] FILTERs it to digits, so Dial gets one
    destination, not two."""
    lab = console.lab
    party = await lab.caller("13912345678")
    ami = console.service.nodes[lab.node.id].ami
    injected = f"13912345678@127.0.0.1:{party.port}&PJSIP/trunk-carrier/sip:13900000000"
    await ami.originate(
        channel="Local/s@hotline-callback/n", application="Wait", data="20", timeout_s=20,
        variables={"HOTLINE_CALLBACK_NUMBER": injected,
                   "HOTLINE_CALLBACK_DIAL_BEFORE": "PJSIP/trunk-carrier/sip:",
                   "HOTLINE_CALLBACK_DIAL_AFTER": f"@127.0.0.1:{party.port}",
                   "HOTLINE_CALLBACK_RING": "20"})
    incoming = await asyncio.wait_for(party.incoming.get(), 20)
    # Dial requests every destination before it calls any: by the first INVITE, a second
    # channel would exist.
    channels = (await leftovers(lab)).get("channels", [])
    dialled = [c for c in channels if c.startswith("PJSIP/trunk-carrier")]
    assert len(dialled) == 1, channels
    await party.hangup(incoming)
    assert await wait_clean(lab) == {}
    assert party.incoming.empty()
    await party.close()


async def test_an_allowed_number_is_called_back_through_the_dialplan(console, sounds):
    svc = console.service
    agent = await console.user("agent1001")
    phone = await console.agent_phone("1001", play=sounds["tone_agent"])
    party = await console.lab.caller("13912345678")
    call_id = f"node1:allowed-{time.time_ns()}"
    for kind, data in (("arrived", {"caller": "+86 139-1234-5678", "dialed": "12345"}),
                       ("routed", {"queue": "nanjing-general", "city": "nanjing"}),
                       ("queued", {"queue": "nanjing-general"}),
                       ("abandoned", {"hold_time": 20}), ("ended", {})):
        await svc.store.apply(CallFact(kind, call_id, "node1", time.time(), data))
    task = await _task_of(console, call_id)
    console.console.web = svc.cfg.web.model_copy(update={
        "callback_dial": f"PJSIP/trunk-carrier/sip:{{number}}@127.0.0.1:{party.port}"})
    status, doc = await agent.post(f"/api/callbacks/{task['id']}/call")
    assert status == 200 and doc["task"]["status"] == "calling", doc
    ctl = console.controls[0]
    await eventually(lambda: _ringing(ctl), 30, what="the agent's softphone ringing")
    status, doc = await agent.post("/api/console/answer")
    assert status == 200, doc
    back = await asyncio.wait_for(party.incoming.get(), 30)
    await party.answer(back)
    await asyncio.wait_for(back.answered.wait(), 10)
    status, doc = await agent.post("/api/console/hangup")
    assert status == 200, doc
    await asyncio.wait_for(back.disconnected.wait(), 15)
    await party.close()
    await phone.close()


async def _ringing(ctl) -> bool:
    return ctl.current is not None
