"""End to end in headless Chromium: an agent signs in to the console and goes ready, a real
pjsua2 caller dials 12345, the console rings and screen-pops, the agent answers through the
softphone (under the console's control), fills in the case and hangs up; the supervisor's
wallboard shows the call waiting, then answered. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from agent_desk.models import CaseForm
from cases.models import Case
from tests.support.browser import chromium, login, ready
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "13812345678"



async def test_agent_takes_a_call_in_the_console_and_the_wallboard_follows(
        console, phones, sounds, artifacts):

    svc = console.service
    phone = await console.agent_phone("1001", play=sounds["tone_agent"])
    await eventually(lambda: _registered(svc, "1001"), 20, what="1001 registered in Asterisk")

    async with chromium() as browser:
        agent = await login(browser, console.base_url, "agent1001")
        await agent.wait_for_url("**/console")
        board = await login(browser, console.base_url, "sup")
        await board.wait_for_url("**/wallboard")
        await board.wait_for_selector('#agents tr[data-agent="1001"]')

        # The agent pauses (示忙, rest) while the caller comes in: the wallboard shows
        # the caller waiting in Nanjing.
        await agent.select_option("#reason", "rest")
        await agent.click("#pause")
        await agent.wait_for_selector('#state[data-state="paused"]')
        caller = await console.lab.caller(CALLER, play=sounds["caller_speech"])
        call = await console.lab.dial(caller, trunk="nanjing")
        await board.wait_for_function(
            "() => document.querySelector('#cities tr[data-city=nanjing] td.waiting')"
            "?.textContent === '1'")
        await board.wait_for_function(  # the longest wait is counting
            "() => /^00:0[1-9]/.test(document.querySelector("
            "'#cities tr[data-city=nanjing] td:nth-child(3)').textContent)")
        await board.screenshot(path=str(artifacts / "wallboard-waiting.png"))
        # 多援一 panel: the supervisor asks for a proposal for Nanjing's queue.
        await board.click('#surge tr[data-surge-queue="nanjing-general"] [data-propose]')
        await board.wait_for_selector("#proposal h3")
        await board.screenshot(path=str(artifacts / "wallboard-surge-proposal.png"),
                               full_page=True)

        # 示闲: the console rings with the screen pop.
        await agent.click("#ready")
        await agent.wait_for_selector("#ringing:not(.hidden)")
        await agent.wait_for_function(
            "() => document.querySelector('#p-caller').textContent === '138****5678'")
        assert await agent.text_content("#p-city") == "南京"  # the configuration's name
        assert await agent.text_content("#p-dialed") == "12345"
        assert "城市：南京（南京中继）" in (await agent.text_content("#p-reasons") or "")
        assert CALLER not in await agent.content()  # masked for agents
        await agent.screenshot(path=str(artifacts / "console-ringing.png"))

        # 接听 through the softphone.
        await agent.click("#r-answer")
        await agent.wait_for_selector("#ringing.hidden", state="attached")
        await agent.wait_for_function(
            "() => document.querySelector('#timer').textContent >= '00:02'")
        assert not (await agent.is_disabled("#hangup"))
        await board.wait_for_function(
            "() => document.querySelector('#cities tr[data-city=nanjing] td.answered')"
            "?.textContent === '1' && document.querySelector("
            "'#cities tr[data-city=nanjing] td.waiting').textContent === '0'")

        # Transfer panel: an action that does not fit the call is a 409 with a message.
        status, code, message = await agent.evaluate(
            "() => import('/static/app.js').then(m => m.api('POST', '/api/console/transfer',"
            " {action: 'three_way'})).then(() => [200, '', ''],"
            " e => [e.status, e.code, e.message])")
        assert status == 409 and code and message, (status, code, message)
        # Hold and unhold through the softphone.
        await agent.click("#hold")
        await agent.click("#unhold")
        assert await agent.text_content("#msg") == ""

        # The case form, saved during the call.
        case_number = await agent.text_content("#p-case")
        # Live captions of this call appear in the transcript pane.
        async with svc.store.sessions() as s:
            call_id = (await s.execute(select(Case.call_id).where(
                Case.number == case_number))).scalar_one()
        for speaker, text in (("caller", "我想咨询社保卡补办"), ("agent", "好的，请讲")):
            await svc.redis.publish(svc.live.keys.captions, json.dumps({
                "call_id": call_id, "case": case_number, "speaker": speaker,
                "text": text, "final": True, "start": 0.0, "end": 1.0}))
        await agent.wait_for_function(
            "() => document.querySelector('#captions').textContent.includes('好的，请讲')")
        await agent.select_option("#f-category", "consultation")
        await agent.fill("#f-subject", "社保卡补办")
        await agent.fill("#f-address", "南京市鼓楼区中山路1号")
        await agent.fill("#f-content", "市民咨询社保卡遗失后的补办手续。已告知所需材料。")
        await agent.fill("#f-department", "人社局")
        await agent.click("#save")
        await agent.wait_for_function(
            "() => document.querySelector('#form-msg').className.includes('ok')")
        await agent.screenshot(path=str(artifacts / "console-talking.png"))
        await board.screenshot(path=str(artifacts / "wallboard-answered.png"))

        # 挂断 (AMI Hangup of the agent's channel): the caller is gone too.
        await agent.click("#hangup")
        await asyncio.wait_for(call.disconnected.wait(), 20)
        await agent.wait_for_function(
            "() => document.querySelector('#hangup').disabled")
        # After the call: more content, then 办结.
        await agent.fill("#f-content", "市民咨询社保卡遗失后的补办手续。已告知所需材料，"
                                       "通话后补记：需携带身份证。")
        await agent.click("#close")
        await agent.wait_for_function(
            "() => document.querySelector('#form-msg').textContent === '已办结'")
        await agent.click("#lang")  # English available
        await agent.wait_for_function(
            "() => document.querySelector('#hangup').textContent === 'Hang up' && "
            "document.querySelector('#form-msg').textContent === 'Closed' && "
            "document.querySelector('#captions').textContent.includes('Agent: 好的')")
        await agent.screenshot(path=str(artifacts / "console-after-call-en.png"))

        # The case list finds it by the caller's number (keyed hash), with the form.
        await board.goto(console.base_url + "/cases")
        await ready(board)
        await board.fill("#q-number", CALLER)
        await board.select_option("#q-category", "consultation")
        await board.click("#q button")
        await board.click(f"#list a[href='#{case_number}']")
        await board.wait_for_function(
            "() => document.querySelector('#detail').textContent.includes('需携带身份证')")
        await board.screenshot(path=str(artifacts / "cases-detail.png"), full_page=True)

    await svc.drain()
    async with svc.store.sessions() as s:
        case = (await s.execute(select(Case).where(Case.number == case_number))).scalar_one()
        form = (await s.execute(select(CaseForm).where(CaseForm.case_id == case.id))
                ).scalar_one()
    assert case.agent_id == "1001" and case.outcome == "answered"
    assert case.closed_at is not None
    # What the agent wrote is stored encrypted; the category and department in clear.
    dec = svc.personal.decrypt
    assert form.category == "consultation" and dec(form.subject_enc) == "社保卡补办"
    assert form.department == "人社局" and "需携带身份证" in dec(form.content_enc)
    assert "需携带身份证" not in (form.content_enc or "")
    assert form.updated_by == "agent1001"
    # Closed: the repeat-caller look-up no longer sees an open case for this caller.
    assert svc.earlier_cases.peek(case.caller_hash) is None
    await caller.close()
    await phone.close()


async def _registered(svc, agent: str) -> bool:
    ami = svc.nodes["node1"].ami
    rows = await ami.send_list({"Action": "QueueStatus", "Member": f"PJSIP/{agent}"})
    return any(r.get("Event") == "QueueMember" and r.get("Status") == "1" for r in rows)
