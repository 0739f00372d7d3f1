"""一键评价 (issue 17, item 5): when the agent hangs up first the caller hears one short prompt
and rates the call with one key; the rating is a fact on the case, counted in today's 满意率
per city and queue (the wallboard's figures come from the case records) and shown in the case
detail. A caller who hangs up first is "not rated"."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.calls import answered_call
from tests.support.dialplan import wait_reading
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "13811112222"


async def _rated_case(service, caller: str):
    digest = service.personal.lookup_hash(caller)

    async def check():
        for c in await service.store.recent(20):
            if c.caller_hash == digest and c.call_state == "ended" and c.rating:
                return c
        return None

    return await eventually(check, 30, what="the call's case with its rating")


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_a_key_pressed_after_the_agent_hangs_up_is_the_cases_rating(console, phones,
                                                                         sounds):
    lab, svc = console.lab, console.service
    agent = await lab.agent("1001", play=sounds["tone_agent"])
    party = await lab.caller(CALLER, play=sounds["caller_speech"])
    call = await lab.dial(party, trunk="nanjing")
    incoming = await asyncio.wait_for(agent.incoming.get(), 30)
    await asyncio.wait_for(incoming.answered.wait(), 10)
    await asyncio.wait_for(call.media_active.wait(), 10)

    # The agent hangs up first: the caller stays, hears the prompt, presses 1 (满意).
    await agent.hangup(incoming)
    await wait_reading(lab, "rating", context="hotline-rating")
    await party.dtmf(call, "1")
    # Asterisk thanks the caller and hangs up.
    await asyncio.wait_for(call.disconnected.wait(), 30)
    await svc.drain()

    case = await _rated_case(svc, CALLER)
    assert case.rating == "satisfied" and case.rated_at is not None
    assert case.hangup_by == "agent" and case.outcome == "answered"
    [rated] = [e for e in case.events if e.kind == "rated"]
    assert rated.detail["rating"] == "satisfied" and rated.detail["key"] == "1"
    assert rated.source == "live"
    kinds = [e.kind for e in case.events]
    assert kinds.index("answered") < kinds.index("rated") < kinds.index("ended"), kinds

    # The figures: today's 满意率 of the city and the queue; the case detail shows the rating.
    sup = await console.user("sup")
    status, figures = await sup.get("/api/wallboard/satisfaction")
    assert status == 200, figures
    nanjing = figures["cities"]["nanjing"]
    assert nanjing["satisfied"] == 1 and nanjing["rated"] == 1
    assert nanjing["satisfaction_rate"] == 1.0
    assert figures["queues"]["nanjing-general"]["satisfaction_rate"] == 1.0
    status, detail = await sup.get(f"/api/cases/{case.number}")
    assert status == 200 and detail["rating"] == "satisfied", detail
    await party.close()
    await agent.close()


async def test_a_caller_who_hangs_up_first_is_not_rated(console, phones, sounds, tmp_path):
    svc = console.service
    await answered_call(console.lab, phones, sounds, caller=CALLER, talk_s=1.0, tmp=tmp_path)
    await svc.drain()
    case = await _rated_case(svc, CALLER)
    assert case.rating == "none" and case.hangup_by == "caller"
    [rated] = [e for e in case.events if e.kind == "rated"]
    assert rated.detail == {"rating": "none", "key": "", "why": "caller_hung_up"}

    sup = await console.user("sup")
    status, figures = await sup.get("/api/wallboard/satisfaction")
    assert status == 200
    nanjing = figures["cities"]["nanjing"]
    assert nanjing["none"] == 1 and nanjing["rated"] == 0 and nanjing["answered"] == 1
    assert nanjing["satisfaction_rate"] is None and nanjing["rated_share"] == 0.0
