"""The knowledge panel of the agent's console in headless Chromium: the agent searches, opens
an article, marks it helpful; writing the case form brings suggestions for it. Screenshots go
to test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_desk.audit import SYSTEM
from agent_desk.knowledge import formats
from agent_desk.knowledge.store import KnowledgeBase
from agent_desk.knowledge.workflow import Editor
from tests.support.browser import MS, chromium, login

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

DATA = Path(__file__).parent.parent / "data" / "knowledge"


async def test_agent_searches_reads_and_gets_suggestions_in_the_console(console, artifacts):

    articles = [a for a in formats.read_json((DATA / "articles.json").read_text("utf-8"))
                if a.valid_to is None and a.valid_from.year < 2026]
    kb = KnowledgeBase(console.service.store.sessions, cities=["nanjing", "suzhou"])
    await kb.load(articles, Editor("system", "admin", None), SYSTEM, publish=True)

    async with chromium() as browser:
        page = await login(browser, console.base_url, "agent1001")
        await page.wait_for_url("**/console")
        await page.wait_for_selector("#kb-q")
        await page.wait_for_function(  # labelled once the language catalogue has loaded
        "() => document.querySelector('#kb h2').textContent === '知识库'")
        await page.fill("#kb-q", "社保卡丢了怎么补办")
        await page.click("#kb-search")
        await page.wait_for_selector('[data-kb-mode="search"]')
        first = page.locator("#kb-results li").first
        assert await first.get_attribute("data-kb") == "kb-sscard-reissue"
        await first.locator("a").click()
        await page.wait_for_selector("#kb-body", timeout=MS)
        assert "挂失" in await page.text_content("#kb-body")
        assert "全省" in await page.text_content("#kb-article")
        await page.click("#kb-helpful")
        await page.wait_for_selector("#kb-helpful:disabled")
        assert await page.text_content("#kb-helpful") == "已标记有帮助"
        assert "1 人认为有帮助" in await page.text_content("#kb-stats")
        await page.screenshot(path=str(artifacts / "console-knowledge-article.png"))

        # Back, the search box emptied: the case form's words bring suggestions.
        await page.click("#kb-back")
        await page.fill("#kb-q", "")
        await page.fill("#f-content", "市民反映小区门口烧烤摊占道经营，油烟很大")
        await page.wait_for_selector('[data-kb-mode="suggest"]')
        await page.wait_for_selector('#kb-results li[data-kb^="kb-street-vending"]')
        await page.screenshot(path=str(artifacts / "console-knowledge-suggested.png"))


async def test_editors_write_review_and_publish_on_the_knowledge_page(console, artifacts):

    async with chromium() as browser:
        sup = await login(browser, console.base_url, "sup")
        await sup.wait_for_url("**/wallboard")
        await sup.click('a[href="/knowledge"]')
        await sup.wait_for_url("**/knowledge")
        await sup.wait_for_selector("#e-state")
        await sup.fill("#e-title", "夜市疏导点经营时间")
        await sup.fill("#e-matter", "urban.sanitation.street_vending")
        await sup.fill("#e-from", "2024-01-01")
        await sup.fill("#e-body", "各区夜市疏导点经营时间为18时至23时，摊贩可到疏导点经营。")
        await sup.click("#e-save")
        await sup.wait_for_selector('#e-state [data-status="draft"]')
        await sup.click("#e-submit")
        await sup.wait_for_selector('#e-state [data-status="in_review"]')
        assert await sup.is_disabled("#e-approve")  # the author does not approve
        article = sup.url.rsplit("#", 1)[1]
        await sup.screenshot(path=str(artifacts / "knowledge-editor-in-review.png"))

        admin = await login(browser, console.base_url, "admin")
        await admin.wait_for_url("**/wallboard")
        await admin.goto(f"{console.base_url}/knowledge#{article}")
        await admin.wait_for_selector('#e-state [data-status="in_review"]')
        await admin.click("#e-approve")
        await admin.wait_for_selector('#e-state [data-status="published"]')
        await admin.wait_for_selector("#e-versions li")
        assert "审核人 admin" in await admin.text_content("#e-versions")
        await admin.wait_for_selector('#e-list tr[data-article] >> text=已发布')
        await admin.screenshot(path=str(artifacts / "knowledge-editor-published.png"))

    agent = await console.user("agent1001")
    status, doc = await agent.post("/api/knowledge/search", {"q": "夜市疏导点几点开始"})
    assert status == 200 and doc["results"][0]["id"] == int(article)
