"""The case loop in headless Chromium, in Chinese: an agent classifies a case (诉求类型 and the
事项 tree by their names) and dispatches it from the case page (the suggested department
preselected, a 协办 department added); the supervisor finds it on the 督办 page from the
wallboard, red and overdue, filters the list and approves the department's extension request.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from cases.loop import states as st
from tests.support.browser import chromium, login

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

CALLER = "13912346666"



async def test_agent_classifies_and_dispatches_and_the_supervisor_sees_it(console, artifacts):

    svc = console.service
    await console.seed_departments(("cg-user", "nj-chengguan"))
    sweep = await console.own_sweep()
    number = await console.call_case(CALLER, "nanjing", "1001")
    # The loop's work happens a month ago (the store's clock): by now it is overdue.
    month_ago = datetime.now(UTC) - timedelta(days=30)

    async with chromium() as browser:
        writer = await console.user("agent1001")
        status, _ = await writer.put(f"/api/cases/{number}/form", {
            "subject": "占道经营", "content": "珠江路夜市摊贩占道经营，晚上噪音扰民"})
        assert status == 200
        agent = await login(browser, console.base_url, "agent1001")
        await agent.wait_for_url("**/console")
        with console.loop_clock(month_ago):
            await agent.goto(f"{console.base_url}/cases#{number}")
            await agent.wait_for_selector("#lp-appeal")
            assert await agent.text_content("#loop h2") == "工单流转"
            assert await agent.text_content("#lp-state") == "已受理"
            # The suggested 事项 from the form's words, beside the picker: taken, it
            # selects the 事项 (classifying confirms it).
            suggested = agent.locator("#lp-suggestion p.suggestion[data-suggested]")
            await suggested.wait_for()
            assert "建议分类" in await suggested.inner_text()
            matter = await suggested.get_attribute("data-suggested")
            await agent.click("#lp-suggestion [data-accept-suggestion]")
            assert await agent.eval_on_selector("#lp-matter", "e => e.value") == matter

            # 分类: the appeal type and the matter by their Chinese names.
            await agent.select_option("#lp-appeal", label="投诉")
            assert await agent.evaluate(
                "() => document.querySelector('#lp-matter option[value="
                "\"urban.sanitation.street_vending\"]').parentElement.label") == "城乡建设"
            await agent.select_option("#lp-matter", label="市容环卫 › 占道经营")
            await agent.select_option("#lp-district", label="玄武区")  # the city's districts
            await agent.fill("#lp-address", "玄武区珠江路88号")
            await agent.click("#lp-classify")
            await agent.wait_for_function(
                "() => document.querySelector('#lp-msg')?.textContent === '已保存分类'")
            assert await agent.text_content("#lp-matter-name") == (
                "城乡建设 › 市容环卫 › 占道经营")
            assert await agent.text_content("#lp-appeal-name") == "投诉"
            assert await agent.text_content("#lp-district-name") == "玄武区"

            # 派单: the suggested department is preselected; 人社局 assists.
            await agent.wait_for_selector("#lp-lead")
            assert "南京市城市管理局" in (await agent.text_content("#lp-suggested") or "")
            assert await agent.input_value("#lp-lead") == "nj-chengguan"
            assert await agent.evaluate(
                "() => document.querySelector('#lp-lead').selectedOptions[0].textContent"
            ) == "南京市城市管理局（推荐）"
            await agent.select_option("#lp-assist", label="南京市人力资源和社会保障局")
            await agent.fill("#lp-instructions", "请尽快核实处理")
            await agent.click("#lp-dispatch")
            await agent.wait_for_selector('#lp-state[data-state="dispatched"]')
            assert await agent.text_content("#lp-state") == "待签收"
            assert await agent.text_content("#lp-msg") == "已派单"
            light = await agent.text_content("#lp-light") or ""
            assert light.startswith("绿灯") and "办理时限 " in light
            assert _zh_date(light)
            row = await agent.text_content('#lp-timeline tr[data-kind="loop.dispatch"]') or ""
            assert "派单" in row and "agent1001" in row and "已受理 → 待签收" in row
            assert "主办：南京市城市管理局；协办：南京市人力资源和社会保障局" in row
            assert "请尽快核实处理" in row
            lead = await agent.text_content('#lp-dispatches tr[data-department="nj-chengguan"]')
            assert "主办" in (lead or "") and "待签收" in (lead or "")
            assert "nj-chengguan" not in await agent.inner_text("#loop")  # names, not ids
            await agent.screenshot(path=str(artifacts / "case-loop-dispatched.png"),
                                   full_page=True)

        # The department signed at once and asked for more time (its own room's API);
        # the 红黄灯 sweep, now, finds it overdue: red, and a 督办单.
        loop = svc.case_loop
        cg = st.Actor("cg-user", "department", "nj-chengguan")
        with console.loop_clock(month_ago + timedelta(minutes=30)):
            await loop.act(number, cg, st.Command("sign"))
            await loop.act(number, cg, st.Command("request_extension", days=3,
                                                  reason="需协调街道联合执法"))
        report = await sweep.run()
        # 城管局 late handling it; 人社局 (assisting, never signed) late signing and handling.
        assert report.orders == 3, report

        sup = await login(browser, console.base_url, "sup")
        await sup.wait_for_url("**/wallboard")
        await sup.click("#nav-supervision")
        await sup.wait_for_url("**/supervision")
        row_sel = f'#s-cases tr[data-case="{number}"]'
        await sup.wait_for_selector(row_sel)
        row = await sup.inner_text(row_sel)
        for text in ("红灯", "南京", "办理中", "投诉", "城乡建设 › 市容环卫 › 占道经营",
                     "南京市城市管理局", "督办"):
            assert text in row, (text, row)
        assert re.search(r"已超期 \d+ 天 \d+ 小时", row), row
        assert "nanjing" not in row and "nj-chengguan" not in row
        # Filters: red keeps it, yellow does not.
        await sup.select_option("#s-light", "yellow")
        await sup.click("#s-search")
        await sup.wait_for_selector(row_sel, state="detached")
        await sup.select_option("#s-light", label="红灯")
        await sup.select_option("#s-department", label="南京市城市管理局")
        await sup.click("#s-search")
        await sup.wait_for_selector(row_sel)
        ext = f'#s-extensions tr[data-extension="{number}"]'
        text = await sup.inner_text(ext)
        assert "需协调街道联合执法" in text and "南京市城市管理局" in text and "3" in text
        await sup.screenshot(path=str(artifacts / "supervision.png"), full_page=True)

        # 延期审批 from the list: the request leaves it, the case's limit moves.
        await sup.click(f'{ext} [data-approve="{number}"]')
        await sup.wait_for_function(
            f"() => document.querySelector('#msg').textContent === "
            f"'已同意 {number} 的延期申请'")
        await sup.wait_for_selector(ext, state="detached")
        v = await loop.view(number)
        assert v["dispatches"][0]["extension"]["state"] == "approved"
        # The case page shows the supervisor the loop with the extension in its timeline.
        await sup.goto(f"{console.base_url}/cases#{number}")
        await sup.wait_for_selector('#lp-timeline tr[data-kind="loop.decide_extension"]')
        row = await sup.inner_text('#lp-timeline tr[data-kind="loop.decide_extension"]')
        assert "延期审批" in row and "通过" in row and "3 个工作日" in row
        row = await sup.inner_text('#lp-timeline tr[data-kind="loop.supervise"]')
        assert "系统（时限监控）" in row and "督办 南京市城市管理局：办理超期" in row
        row = await sup.inner_text('#lp-timeline tr[data-kind="loop.sign"]')
        assert "cg-user（南京市城市管理局）" in row and "待签收 → 办理中" in row
        # The call's timeline names the loop's steps too.
        await sup.wait_for_function(
            "() => document.querySelector('#detail').textContent.includes('延期审批')")
        assert "loop." not in await sup.inner_text("#detail")
        # The same panel in English.
        await sup.click("#lang")
        await sup.wait_for_function(
            "() => document.querySelector('#loop h2').textContent === 'Case loop'")
        row = await sup.inner_text('#lp-timeline tr[data-kind="loop.decide_extension"]')
        assert "extension decided" in row and "3 working days" in row
        await sup.screenshot(path=str(artifacts / "case-loop-supervisor.png"),
                             full_page=True)


def _zh_date(text: str) -> bool:
    """A date and time as zh-CN writes it: 2026/03/02 09:00:00."""
    return re.search(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}", text) is not None
