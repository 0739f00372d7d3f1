"""The public intake page in headless Chromium, as a citizen uses it: the form in Chinese
(city, 诉求类型 and 事项 from the service, the consent box), the case number and query code
after submitting, then the status query with the phone number; the hotline's reviewed reply
appears there once the case has gone round the loop. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re

import pytest

from cases.loop import states as st
from cases.loop.store import DepartmentEntry, Details
from tests.support.browser import chromium, new_page

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

SUP = st.Actor("sup", "supervisor")
CG = st.Actor("cg-user", "department", "nj-chengguan")


async def test_a_citizen_submits_the_form_and_reads_the_reviewed_reply(console, artifacts):
    from playwright.async_api import expect

    deps = console.console
    await deps.loop.upsert_departments([
        DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing")])
    async with chromium() as browser:
        page = await new_page(browser, width=900, height=1300)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(console.base_url + "/intake")
        # The page says what it is in Chinese, its choices come from the service.
        await page.wait_for_selector('#f-city option[value="nanjing"]', state="attached")
        assert await page.text_content("h1") == "12345 市民诉求网上受理"
        await page.fill("#f-name", "王建国")
        await page.fill("#f-phone", "139 5555 6666")
        await page.select_option("#f-city", "nanjing")
        await page.select_option("#f-type", "complaint")
        await page.select_option("#f-matter", "urban.sanitation.street_vending")
        await page.fill("#f-subject", "新街口地铁站出口占道经营")
        await page.fill("#f-address", "南京市秦淮区新街口地铁站2号口")
        await page.fill("#f-content", "每天傍晚出口处摆满小摊，行人只能走机动车道，很危险。")
        # Without the consent the page says so and sends nothing.
        await page.click("#f-submit")
        assert await page.text_content("#f-msg") == "请阅读并勾选同意个人信息使用说明"
        await page.check("#f-consent")
        await page.screenshot(path=str(artifacts / "intake-form.png"), full_page=True)
        await page.click("#f-submit")
        await page.wait_for_selector("#done:not(.hidden)")
        number = (await page.text_content("#done-number") or "").strip()
        code = (await page.text_content("#done-code") or "").strip()
        assert len(number) == 14 and number.isdigit() and len(code) == 8
        assert await page.text_content("#done .big") == "您的诉求已受理"
        await page.screenshot(path=str(artifacts / "intake-accepted.png"), full_page=True)

        view = await deps.loop.view(number)
        assert view["state"] == "accepted" and view["channel"] == "web"

        # Through the loop, up to the hotline's review of the department's reply.
        reply = "已联合街道清理出口摊点，并安排城管队员傍晚值守。"
        await deps.loop.act(number, SUP, st.Command("classify"), Details(
            appeal_type="complaint", matter="urban.sanitation.street_vending",
            district="qinhuai"))
        await deps.loop.act(number, SUP, st.Command("dispatch", lead="nj-chengguan"))
        await deps.loop.act(number, CG, st.Command("sign"))
        await deps.loop.act(number, CG, st.Command("reply", reason=reply),
                            Details(contacted=True))
        await deps.loop.act(number, SUP, st.Command("review", accept=True))

        # The status page (filled in from the answer): by phone number.
        await page.click("#done-status")
        await page.wait_for_selector("#status-view:not(.hidden)")
        assert await page.input_value("#q-number") == number
        await page.fill("#q-code", "")
        await page.fill("#q-phone", "13955556666")
        await page.click("#q-submit")
        await page.wait_for_selector('#q-state[data-state="answered"]')
        assert await page.text_content("#q-state") == "已答复"
        assert await page.text_content("#q-reply") == reply
        await page.screenshot(path=str(artifacts / "intake-status.png"), full_page=True)

        # A wrong number: told nothing about the case, in Chinese.
        await page.fill("#q-phone", "13900000000")
        await page.click("#q-submit")
        # (Polled by Playwright: the page's CSP allows no evaluated script.)
        await expect(page.locator("#q-msg")).to_have_text(re.compile("^未找到该工单"))
        assert await page.query_selector("#q-reply") is None
        assert errors == [] or all("404" in e for e in errors), errors
