"""The console's transfer panel speaks call control's modes: an agent hands a caller straight
to a branch center with ``{"action": "blind", "destination": ...}`` (real Asterisk)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.asterisk import wait_clean
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk


async def test_blind_transfer_from_the_console(console, phones, sounds, tmp_path):
    lab, svc = console.lab, console.service
    agent = await console.user("agent1001")
    agent_phone = await lab.agent("1001", play=sounds["tone_agent"])
    branch_phone = await lab.line("tax", play=sounds["tone_branch"])
    endpoint = lab.cfg.destination("tax").endpoint

    async def reachable() -> bool:
        out = await asyncio.to_thread(lab.instance.cli, f"pjsip show aor {endpoint}")
        return "Avail" in out and "Unavail" not in out

    await eventually(reachable, 20, what="the tax trunk reachable")
    caller = await lab.caller("13800002222", play=sounds["tone_caller"])
    call = await lab.dial(caller)
    a_call = await asyncio.wait_for(agent_phone.incoming.get(), 30)
    await asyncio.wait_for(a_call.answered.wait(), 10)

    async def talking() -> dict | None:
        _status, doc = await agent.get("/api/console/state")
        return doc if doc.get("call") and doc["call"]["state"] == "talking" else None

    state = await eventually(talking, 20, what="the console showing the call")
    status, doc = await agent.post("/api/console/transfer", {"action": "blind"})
    assert status == 422 and "destination" in doc["message"], doc

    status, doc = await agent.post("/api/console/transfer",
                                   {"action": "blind", "destination": "tax"})
    assert status == 200, doc
    assert doc["leg"]["mode"] == "blind" and doc["leg"]["destination"] == "tax"
    await asyncio.wait_for(a_call.disconnected.wait(), 10)  # the agent is free at once
    b_call = await asyncio.wait_for(branch_phone.incoming.get(), 20)
    await asyncio.wait_for(b_call.answered.wait(), 20)
    leg = svc.callcontrol.leg(doc["leg"]["leg_id"])
    await asyncio.wait_for(leg.settled.wait(), 30)
    assert leg.state == "handed_off"
    await branch_phone.hangup(b_call)
    await asyncio.wait_for(call.disconnected.wait(), 10)

    number = state["case"]["number"]

    async def recorded() -> dict | None:
        _status, case = await agent.get(f"/api/cases/{number}")
        return case if case.get("transfers") else None

    case = await eventually(recorded, 20, what="the transfer on the case")
    assert case["transfers"][0]["mode"] == "blind"
    for p in (caller, agent_phone, branch_phone):
        await p.close()
    assert await wait_clean(lab) == {}
