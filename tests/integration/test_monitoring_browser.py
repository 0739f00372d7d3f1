"""监听、耳语、强插 in headless Chromium: the supervisor clicks 监听 on an agent's row of the
wallboard, the desk phone (pjsua2) rings and answers, the monitoring panel shows the session,
耳语 and 强插 change its mode on the same phone call, 挂断 ends it; with the policy on, the
agent's console says a supervisor is on the call. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.asterisk import wait_clean
from tests.support.browser import MS, chromium, login
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]


async def test_supervisor_monitors_from_the_wallboard(console, phones, sounds, artifacts):

    lab, svc = console.lab, console.service
    policy = svc.cfg.supervision.model_copy(update={"agent_sees_monitoring": True})
    svc.monitoring.cfg = svc.cfg.model_copy(update={"supervision": policy})
    sup_phone = await lab.supervisor("9001", play=sounds["tone_branch"])
    agent_phone = await lab.agent("1001", play=sounds["tone_agent"])
    caller = await lab.caller("13812345678", play=sounds["caller_speech"])

    async with chromium() as browser:
        board = await login(browser, console.base_url, "sup")
        await board.wait_for_url("**/wallboard")
        agent = await login(browser, console.base_url, "agent1001")
        await agent.wait_for_url("**/console")
        call = await lab.dial(caller)
        a_call = await asyncio.wait_for(agent_phone.incoming.get(), 30)
        await asyncio.wait_for(a_call.answered.wait(), 10)
        listen = '#agents tr[data-agent="1001"] button[data-monitor][data-mode="listen"]'
        await board.wait_for_selector(listen)
        await board.click(listen)
        s_call = await asyncio.wait_for(sup_phone.incoming.get(), 20)
        await asyncio.wait_for(s_call.answered.wait(), 10)
        row = "#monitoring tr[data-session]"
        await board.wait_for_selector(f"{row} .mode-listen")
        await board.wait_for_function(
            f"() => document.querySelector('{row} td:nth-child(5)')?.textContent === '进行中'")
        await board.screenshot(path=str(artifacts / "wallboard-monitoring-listen.png"),
                               full_page=True)
        await board.click(f'{row} button[data-switch][data-mode="whisper"]')
        await board.wait_for_selector(f"{row} .mode-whisper")
        await agent.wait_for_function(
            "() => document.querySelector('#monitored')?.textContent.includes('耳语')")
        await agent.screenshot(path=str(artifacts / "console-monitored-whisper.png"))
        await board.click(f'{row} button[data-switch][data-mode="barge"]')
        await board.wait_for_selector(f"{row} .mode-barge")
        await board.screenshot(path=str(artifacts / "wallboard-monitoring-barge.png"),
                               full_page=True)
        assert not s_call.disconnected.is_set(), "one phone call through every mode"
        await board.click(f"{row} button[data-leave]")
        await asyncio.wait_for(s_call.disconnected.wait(), 10)
        await board.wait_for_selector(row, state="detached", timeout=MS)
        await agent.wait_for_selector("#monitored.hidden", state="attached")
    session = svc.monitoring.recent()[-1]
    assert [m for m, _at in session.modes] == ["listen", "whisper", "barge"]
    await caller.hangup(call)
    await asyncio.wait_for(a_call.disconnected.wait(), 10)
    for p in (caller, agent_phone, sup_phone):
        await p.close()
    await eventually(lambda: _none_active(svc), 10, what="no session left")
    assert await wait_clean(lab) == {}


async def _none_active(svc) -> bool:
    return not svc.monitoring.active()
