"""The supervisor's and the inspector's views in headless Chromium, over the running service
(real Asterisk, Redis, SQLite): a seeded yesterday of call facts and presence changes; the
wallboard shows today's agent figures and the staffing forecast; the reports page yesterday's
figures with their XLSX export; the inspector (qa) scores a sampled call beside its record,
the caller masked, and the score reaches the agent's console and figures. Each role is kept
to its own: the inspector reads no figures and no unsampled case, the agent no sample.
Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, time, timedelta
from time import time as time_now
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from agent_desk.models import AuditEntry
from agent_desk.web.auth import Users
from cases.models import Case
from tests.support.browser import chromium, login, ready
from tests.support.console import CONSOLE_PASSWORD
from tests.support.figures import call

pytestmark = [pytest.mark.asterisk, pytest.mark.slow]

TZ = ZoneInfo("Asia/Shanghai")


def at(day, hh: int, mm: int, ss: int = 0) -> float:  # type: ignore[no-untyped-def]
    return datetime.combine(day, time(hh, mm, ss), TZ).timestamp()



async def seed(svc) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    day = datetime.now(TZ).date() - timedelta(days=1)
    store = svc.store
    await call(store, "fig-A", at(day, 9, 0), [("1001", 5, True)], 600, "satisfied")
    await call(store, "fig-B", at(day, 10, 0), [("1002", 2, False), ("1001", 17, True)], 120,
               "unsatisfied", transfer="emergency_line")
    await call(store, "fig-C", at(day, 11, 0), [("1002", 2, True)], 90, "basic")
    # Today's call: not in any sample (a day is sampled once it is over). Today in Shanghai:
    # an hour ago was yesterday when CI ran at 00:19 there, and yesterday's figures were off.
    midnight = at(day + timedelta(days=1), 0, 0)
    await call(store, "fig-T", max(time_now() - 3600, midnight + (time_now() - midnight) / 2),
               [("1001", 2, True)], 60, "satisfied")
    for agent, kind, reason, t in [
            ("1001", "signed_in", "", at(day, 8, 0)),
            ("1001", "paused", "rest", at(day, 12, 0)),
            ("1001", "ready", "", at(day, 12, 30)),
            ("1001", "signed_out", "", at(day, 17, 0)),
            ("1002", "signed_in", "", at(day, 10, 0)),
            ("1002", "signed_out", "", at(day, 14, 0))]:
        await svc.agent_states.record(agent, kind, reason, by="test", at=t)
    async with svc.store.sessions() as s:
        numbers = {cid: n for cid, n in (await s.execute(
            select(Case.call_id, Case.number).where(Case.call_id.like("fig-%")))).all()}
    return day.isoformat(), numbers


async def test_supervisor_and_inspector_views(console, artifacts) -> None:

    svc = console.service
    day, numbers = await seed(svc)
    await Users(svc.store.sessions).add("qa1", CONSOLE_PASSWORD, "qa")
    base = console.base_url
    async with chromium() as browser:
        # The wallboard: today's figures (the agents signed in when the service began)
        # and the forecast of the current half-hour.
        board = await login(browser, base, "sup")
        await board.wait_for_url("**/wallboard")
        await board.wait_for_selector('#agent-figures tr[data-figures="1001"]')
        await board.wait_for_selector("#forecast tr.current")
        await board.locator("#figures-panel").screenshot(
            path=str(artifacts / "wallboard-agent-figures.png"))
        await board.locator("#forecast-panel").screenshot(
            path=str(artifacts / "wallboard-forecast.png"))

        # The reports page: yesterday's figures, by agent, equal the seeded day's.
        # Today's day figures (asked for when the period changes, the date not yet) are held
        # back until yesterday's are shown: an answer to an older request must not replace
        # them (it did, on CI, when the two answers crossed).
        release = asyncio.Event()

        async def hold_today(route):  # type: ignore[no-untyped-def]
            if "period=day" in route.request.url and f"date={day}" not in route.request.url:
                await release.wait()
            await route.continue_()

        await board.goto(base + "/reports")
        # The page's script is done (its own first request answered, the date set to today,
        # the listeners on): input before that was overwritten or unheard on a fresh clone.
        await ready(board)
        async with board.expect_response(lambda r: "period=week" in r.url
                                         and "/api/figures/agents?" in r.url):
            await board.select_option("#fig-period", "week")
        await board.route("**/api/figures/agents?*", hold_today)
        await board.select_option("#fig-period", "day")  # today's day: held
        await board.fill("#fig-date", day)
        await board.click("#fig-show")
        row = board.locator('#agent-figures tr[data-figures="1001"]')
        await row.locator("td.handled", has_text="2").wait_for()
        async with board.expect_response(
                lambda r: "/api/figures/agents?" in r.url and "period=day" in r.url
                and f"date={day}" not in r.url):
            release.set()
        await board.wait_for_timeout(300)  # the held answer's turn to (not) be painted
        assert await row.locator("td.handled").text_content() == "2"
        assert await row.locator("td.satisfaction").text_content() == "50.0%"
        b = board.locator('#agent-figures tr[data-figures="1002"]')
        assert await b.locator("td.handled").text_content() == "1"
        await board.locator("#figures-panel").screenshot(
            path=str(artifacts / "reports-agent-figures.png"))
        href = await board.get_attribute("#fig-xlsx", "href")
        got = await board.request.get(base + href)
        assert got.ok
        sheet = load_workbook(io.BytesIO(await got.body())).active
        assert sheet is not None and sheet.cell(row=1, column=2).value == "接听量"
        # A date outside the reports' range is a clear refusal (the API fuzzer's find).
        for path in ("/api/figures/agents?period=month&date=0001-01-01",
                     "/api/figures/agents/export?period=day&date=9999-12-31",
                     "/api/figures/forecast?date=0001-01-01",
                     "/api/quality/samples?date=9999-12-31"):
            got = await board.request.get(base + path)
            assert got.status == 422 and "date" in (await got.json())["message"], path

        # The inspector: yesterday's sample (every call here is picked by a rule), the
        # record beside the form, the caller masked; a score, saved.
        qa = await login(browser, base, "qa1")
        await qa.wait_for_url("**/quality")
        b_row = qa.locator(f'#samples tr[data-sample="{numbers["fig-B"]}"]')
        await b_row.wait_for()
        assert "不满意评价" in (await b_row.text_content() or "")
        await b_row.locator("[data-inspect]").click()
        await qa.wait_for_selector("#save-score")
        assert "*" in (await qa.text_content("#qa-caller") or "")
        await qa.fill('#score-form input[name="listening"]', "20")
        await qa.fill('#score-form input[name="attitude"]', "10")
        await qa.fill('#score-form textarea[name="comment"]', "转接及时，倾听不足")
        await qa.click("#save-score")
        await qa.wait_for_function(
            "() => document.querySelector('#score-msg').textContent.includes('80')")
        await qa.screenshot(path=str(artifacts / "quality-scoring.png"), full_page=True)
        # Their role's limits: no figures, no case outside the sample.
        assert (await qa.request.get(base + "/api/figures/agents")).status == 403
        sampled, today = numbers["fig-B"], numbers["fig-T"]
        assert (await qa.request.get(base + f"/api/cases/{sampled}/transcript")).ok
        for path in (f"/api/cases/{today}", f"/api/cases/{today}/transcript",
                     f"/api/recordings/{today}/any.wav"):
            assert (await qa.request.get(base + path)).status == 404, path

        # The agent reads their own score and the comment; samples are not theirs to read.
        agent = await login(browser, base, "agent1001")
        await agent.wait_for_url("**/console")
        mine = agent.locator(f'#my-scores tr[data-score="{numbers["fig-B"]}"]')
        await mine.wait_for()
        assert "倾听不足" in (await mine.text_content() or "")
        await agent.locator("#my-qa").screenshot(
            path=str(artifacts / "console-my-scores.png"))
        assert (await agent.request.get(base + "/api/quality/samples")).status == 403

        # The score reaches the agent's figures of the day.
        await board.click("#fig-show")
        await row.locator("td.qa", has_text="80.0").wait_for()
    # The surge rebalancer reads the same forecast as the wallboard.
    figures = await svc.surge.figures_all()
    assert figures["nanjing-general"].forecast_needed == await svc.staffing.needed_now("nanjing")
    async with svc.store.sessions() as s:
        actions = set((await s.execute(select(AuditEntry.action))).scalars())
    assert {"figures.view", "figures.export", "qa.samples", "qa.score", "qa.mine"} <= actions
