"""Agent figures, 质检 and the staffing forecast on real databases (SQLite and PostgreSQL).

A seeded day (yesterday, local time) of call facts applied by the case store as the tracker
would, presence changes kept by the state log, a 质检 sample drawn and scored: the figures
equal the values computed by hand (below), the sample follows its rules, the score reaches
the agent's figures, the inspector sees the sampled calls only. A history of three earlier
same weekdays gives the staffing of Call Centre Helper's published Erlang C example.

Hand-computed (times local):
- 1001: signed in 08:00-17:00 (32400 s), wrap-up 09:10:10-09:11:10 (60 s), rest 12:00-12:30
  (1800 s); call A 09:00:08-09:10:08 (600 s, 满意), call B 10:00:20-10:02:20 (120 s, 不满意,
  transferred to an emergency line). handled 2, average talk 360 s, average wrap-up 30 s,
  occupancy (720 + 60) / (32400 - 1800) = 0.0255, 满意率 1/2.
- 1002: signed in 10:00-14:00 (14400 s); missed the first ring of B; call C 11:00:05-11:01:35
  (90 s, 基本满意, a complaint), calls D and E 30 s each, not rated. handled 3, average talk
  50 s, occupancy 150 / 14400, 满意率 1/1.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from agent_desk.access import Scope
from agent_desk.audit import Actor
from agent_desk.cases.store import ConsoleStore
from agent_desk.figures.services import AgentFiguresDesk, figures_table, to_csv, to_xlsx
from agent_desk.figures.store import AgentStateLog, FiguresStore
from agent_desk.models import AgentStateEvent, AuditEntry, CaseForm
from agent_desk.quality.store import QualityDesk
from cases.db import sessionmaker
from cases.models import Case
from cases.store import CaseStore
from common.config import load_config
from common.errors import DomainError
from common.privacy import PersonalData
from lab.harness import EXAMPLE_CONFIG
from queueing.surge.history import CallHistory
from queueing.surge.staffing import Staffing
from tests.support.figures import call

TZ = ZoneInfo("Asia/Shanghai")
DAY = datetime.now(TZ).date() - timedelta(days=1)
KEY = "figures-test-key-0123456789abcdef"
INSPECTOR = Actor("qa1", "qa", "127.0.0.1")


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> float:
    return datetime.combine(day, time(hh, mm, ss), TZ).timestamp()


def config():  # type: ignore[no-untyped-def]
    cfg = load_config(EXAMPLE_CONFIG)
    quality = cfg.quality.model_copy(update={"random_per_agent": 1, "long_call_s": 600})
    surge = cfg.surge.model_copy(update={"target_s": 20, "forecast_weeks": 4})
    web = cfg.web.model_copy(update={"wrapup_after_call_s": 0})
    return cfg.model_copy(update={"quality": quality, "surge": surge, "web": web})


@pytest.fixture
async def world(migrated_engine):  # type: ignore[no-untyped-def]
    sessions = sessionmaker(migrated_engine)
    store = CaseStore(sessions, PersonalData(KEY), "Asia/Shanghai")
    cfg = config()
    await call(store, "A", at(9, 0), [("1001", 5, True)], 600, "satisfied")
    await call(store, "B", at(10, 0), [("1002", 2, False), ("1001", 17, True)], 120,
               "unsatisfied", transfer="emergency_line")
    await call(store, "C", at(11, 0), [("1002", 2, True)], 90, "basic")
    await call(store, "D", at(13, 0), [("1002", 1, True)], 30, "none")
    await call(store, "E", at(13, 30), [("1002", 1, True)], 30, None)
    async with sessions() as s, s.begin():
        c = (await s.execute(select(Case).where(Case.call_id == "C"))).scalar_one()
        s.add(CaseForm(case_id=c.id, category="complaint"))
    log = AgentStateLog(sessions)
    for agent, kind, reason, t in [
            ("1001", "signed_in", "", at(8, 0)),
            ("1001", "paused", "after_call_work", at(9, 10, 10)),
            ("1001", "ready", "", at(9, 11, 10)),
            ("1001", "paused", "rest", at(12, 0)),
            ("1001", "ready", "", at(12, 30)),
            ("1001", "signed_out", "", at(17, 0)),
            ("1002", "signed_in", "", at(10, 0)),
            ("1002", "signed_out", "", at(14, 0))]:
        assert await log.record(agent, kind, reason, by="test", at=t)
    # The same change again (a retried write) is the same fact.
    assert not await log.record("1001", "paused", "rest", by="test", at=at(12, 0))
    yield cfg, sessions, store
    await store.close()


def row(report, key):  # type: ignore[no-untyped-def]
    return next(r for r in report["rows"] if r["key"] == key)


async def test_figures_of_a_seeded_day_equal_the_hand_computed_values(world) -> None:
    cfg, sessions, _ = world
    async with sessions() as s:
        assert len((await s.execute(select(AgentStateEvent))).all()) == 8
    desk = AgentFiguresDesk(cfg, FiguresStore(sessions),
                            Staffing(cfg, CallHistory(sessions, TZ), TZ))
    report = await desk.report(desk.period("day", DAY), "agent", city=None)
    a = row(report, "1001")
    assert (a["name"], a["handled"], a["avg_talk_s"], a["avg_wrap_s"]) == ("王芳", 2, 360.0, 30.0)
    assert a["signed_in_s"] == 32400.0
    assert a["paused_s"] == {"after_call_work": 60.0, "rest": 1800.0}
    assert a["occupancy"] == pytest.approx(780 / 30600, abs=1e-4)
    assert (a["missed"], a["transfers"], a["emergency_transfers"]) == (0, 1, 1)
    assert (a["rated"], a["satisfaction_rate"]) == (2, 0.5)
    b = row(report, "1002")
    assert (b["handled"], b["avg_talk_s"], b["missed"]) == (3, 50.0, 1)
    assert b["occupancy"] == pytest.approx(150 / 14400, abs=1e-4)
    assert (b["rated"], b["satisfaction_rate"]) == (1, 1.0)
    # Per city (and per team: the example's agents have none): the sums, then the rates.
    city = (await desk.report(desk.period("day", DAY), "city", city="nanjing"))["rows"]
    assert [(r["key"], r["handled"], r["avg_talk_s"], r["rated"], r["satisfied"])
            for r in city] == [("nanjing", 5, 174.0, 3, 2)]
    team = (await desk.report(desk.period("day", DAY), "team", city=None))["rows"]
    assert team[0]["handled"] == 5 and team[0]["name"].endswith("未分班组")
    # The week holding the day counts the same calls; the day after counts none of them.
    week = await desk.report(desk.period("week", DAY), "agent", city=None)
    assert row(week, "1001")["handled"] == 2
    after = await desk.report(desk.period("day", DAY + timedelta(days=1)), "agent", city=None)
    assert all(r["handled"] == 0 for r in after["rows"])
    # The exports: the same rows, Chinese headers, the total last.
    table = figures_table(report)
    assert table[0][:2] == ["名称", "接听量"] and table[-1][:2] == ["合计", 5]
    text = to_csv(table).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text)))[1][0] == "王芳"
    sheet = load_workbook(io.BytesIO(to_xlsx(table, "agents"))).active
    assert sheet is not None and sheet.cell(row=2, column=2).value == 2


async def test_the_qa_sample_follows_its_rules_and_a_score_reaches_the_figures(world) -> None:
    cfg, sessions, _ = world
    qa = QualityDesk(sessions, cfg.quality, TZ, {a.id: a.name for a in cfg.agents})
    with pytest.raises(DomainError):
        await qa.draw(DAY + timedelta(days=1))  # today is not over
    samples = await qa.samples(DAY, city=None)
    numbers = {}
    async with sessions() as s:
        for cid, number in (await s.execute(select(Case.call_id, Case.number))).all():
            numbers[number] = cid
    by_call = {numbers[x["case"]]: x for x in samples}
    assert by_call["A"]["reasons"] == ["long_call"]
    assert by_call["B"]["reasons"] == ["unsatisfied", "emergency_transfer"]
    assert by_call["C"]["reasons"] == ["complaint"]
    drawn = [c for c in ("D", "E") if c in by_call]
    assert len(drawn) == 1 and by_call[drawn[0]]["reasons"] == ["random"]
    # Drawing again stores nothing new.
    assert await qa.draw(DAY) == 0 and len(await qa.samples(DAY, city=None)) == 4

    # The inspector sees the sampled calls' cases only, the caller masked.
    cases = ConsoleStore(sessions, PersonalData(KEY), "Asia/Shanghai")
    scope = Scope("qa1", "qa", city=None)
    undrawn = next(n for n, c in numbers.items() if c in ("D", "E") and c not in drawn)
    assert (await cases.visible(by_call["B"]["case"], scope)).number == by_call["B"]["case"]
    with pytest.raises(DomainError):
        await cases.visible(undrawn, scope)
    with pytest.raises(DomainError):  # another city's inspector
        await cases.visible(by_call["B"]["case"], Scope("qa2", "qa", city="suzhou"))

    # A bad score loses nothing; a good one is audited and reaches the agent's figures.
    sample = by_call["B"]["id"]
    with pytest.raises(DomainError, match="missing"):
        await qa.score(sample, {"greeting": 10}, "", INSPECTOR, city=None)
    with pytest.raises(DomainError, match="0 to 10"):
        await qa.score(sample, {"greeting": 11, "listening": 0, "policy": 0, "attitude": 0,
                                "closing": 0}, "", INSPECTOR, city=None)
    items = {"greeting": 10, "listening": 20, "policy": 30, "attitude": 10, "closing": 10}
    done = await qa.score(sample, items, "转接及时，倾听不足", INSPECTOR, city=None)
    assert done["score"]["score"] == 80.0
    await qa.score(by_call["A"]["id"], {**items, "listening": 30, "attitude": 20}, "好",
                   INSPECTOR, city=None)
    async with sessions() as s:
        audit = (await s.execute(select(AuditEntry).where(AuditEntry.action == "qa.score"))
                 ).scalars().all()
    assert [(e.username, e.case_number) for e in audit] == [
        ("qa1", by_call["B"]["case"]), ("qa1", by_call["A"]["case"])]
    mine = await qa.mine("1001")
    assert [(m["score"]["score"], m["score"]["comment"]) for m in mine] == [
        (100.0, "好"), (80.0, "转接及时，倾听不足")]
    assert await qa.mine("1002") == []
    desk = AgentFiguresDesk(cfg, FiguresStore(sessions),
                            Staffing(cfg, CallHistory(sessions, TZ), TZ))
    a = row(await desk.report(desk.period("day", DAY), "agent", city=None), "1001")
    assert (a["qa_count"], a["qa_avg"]) == (2, 90.0)


async def test_the_forecast_on_a_seeded_history_matches_the_published_erlang_c(world) -> None:
    cfg, sessions, _ = world
    # Ten weeks ahead: its history (the same weekday 1-4 weeks before) is only what is seeded
    # here — 90, 100 and 110 calls at 09:00-09:30 of three of those days, 180 s each; the
    # fourth day has no call at all and is left out (the history had not begun).
    target = DAY + timedelta(days=70)
    async with sessions() as s, s.begin():
        for weeks, calls in ((1, 90), (2, 100), (3, 110)):
            day = target - timedelta(days=7 * weeks)
            for i in range(calls):
                t = datetime.fromtimestamp(at(9, 0, 0, day) + i * 1700 / calls, UTC)
                s.add(Case(number=f"H{weeks}{i:05d}", city="nanjing", arrived_at=t,
                           talk_seconds=180.0, flags=[], priority=0, call_state="ended"))
    desk = AgentFiguresDesk(cfg, FiguresStore(sessions),
                            Staffing(cfg, CallHistory(sessions, TZ), TZ))
    doc = await desk.forecast("nanjing", target)
    nine = doc["intervals"][18]
    # Call Centre Helper's worked example: 100 calls in 30 min, AHT 180 s, 80 % in 20 s.
    assert doc["aht_s"] == 180.0 and doc["target"] == {"service_level": 0.8, "seconds": 20}
    assert (nine["start"], nine["expected_calls"], nine["agents_needed"]) == ("09:00", 100.0, 14)
    assert doc["intervals"][17]["agents_needed"] == 0 and nine["signed_in"] is None
    # Another city has no history at that time: nothing expected, nobody needed.
    assert (await desk.forecast("suzhou", target))["intervals"][18]["agents_needed"] == 0
    # The seeded day, which is over: the agents signed in per half-hour, from the facts.
    past = (await desk.forecast("nanjing", DAY))["intervals"]
    assert [past[i]["signed_in"] for i in (0, 16, 18, 20, 28, 34)] == [0, 1, 1, 2, 1, 0]
    # The surge rebalancer reads the same forecast (the current half-hour's need).
    staffing = Staffing(cfg, CallHistory(sessions, TZ), TZ,
                        clock=lambda: datetime.combine(target, time(9, 10), TZ))
    assert await staffing.needed_now("nanjing") == 14
