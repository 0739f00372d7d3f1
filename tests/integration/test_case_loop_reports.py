"""The case loop's reports on real databases (SQLite and PostgreSQL): a week of cases for two
departments in two cities, driven through the loop store with a clock, each figure checked
against the value worked out by hand below; the same numbers in the CSV and XLSX exports, the
daily and weekly files of the scheduled worker, and the console's refusals (role, city).

The week is Monday 2026-03-02 to Sunday 2026-03-08 in Asia/Shanghai. Departments: 城管 CG
(nj-chengguan, Nanjing) and 人社 RS (sz-renshe, Suzhou). Time limits: CalendarDays (sign in
2 h; complaint 5 days, help 3, consultation 1).

Cases (local time; nj Nanjing, sz Suzhou):

- P0 nj: accepted Feb 27 09:00, complaint → CG; signed 10:00; replied Mar 4 10:00 (due 09:00:
  late; 121 h); 回访 Mar 4 11:00 resolved, 满意 → closed.
- N0 nj: accepted Sun Mar 1 23:30 (before the week, though 15:30 UTC).
- N1 nj: Mar 2 09:00 complaint → CG; signed 10:00; replied Mar 4 09:00 (48 h); 回访 Mar 4
  12:00 resolved, 基本满意 → closed.
- N2 nj: Mar 3 09:00, N1's caller (repeat_caller), complaint → CG + RS 协办; RS signs 10:00,
  CG 12:00 (late); CG replies Mar 5 09:00 (48 h); 回访 Mar 5 12:00 unresolved, 不满意 → 重办
  round 2 (CG + RS); CG signs 13:00, replies Mar 6 12:00 (24 h); RS never signs; 回访 Mar 7
  10:00 resolved, 满意 → closed.
- N3 nj: Mar 4 09:00 consultation, finished directly at 09:05.
- N4 nj: Mar 2 08:00 help → CG at 09:00 (due Mar 5 09:00); signed 10:00; 延期 2 days
  approved (due Mar 7 09:00); replied Mar 6 09:00 (96 h, on time); 回访 not reached → closed.
- N5 nj: Mar 6 09:00 complaint → CG, never signed.
- N6 nj: Sun Mar 8 23:30 (in the week), merged into N1.
- N7 nj: Mon Mar 9 00:30 (after the week, though still Mar 8 in UTC).
- S1 sz: Mar 2 10:00 help → RS; signed 11:00; replied Mar 6 10:00 (due Mar 5 10:00: late;
  96 h); 回访 Mar 6 15:00 unresolved, 不满意 → 重办 round 2 (RS, never signed).
- S2 sz: Mar 3 10:00 consultation → RS, returned at 10:30 unsigned; → CG at 11:00; signed
  12:00; replied Mar 4 10:00 (23 h); 回访 Mar 4 12:00 unresolved, 基本满意 → 重办 round 3
  (CG); signed 13:00; replied Mar 5 11:00 (23 h); 回访 Mar 5 15:00 resolved, 满意 → closed.
- S3 sz: Mar 7 10:00, S1's place and 事项 (repeat_place), complaint → RS; signed 11:00.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa

from agent_desk.models import AuditEntry
from agent_desk.reports.exports import COLUMNS, HEADER_ROW, to_csv, to_xlsx
from agent_desk.reports.plugin import ReportFiles, ReportsWorker
from agent_desk.web.auth import Users
from cases.db import make_engine, migrate, sessionmaker
from cases.loop import states as st
from cases.loop.reports import Figures, LoopReports, Query, Report, Row, period_of
from cases.loop.store import CaseLoop, DepartmentEntry, Details
from cases.loop.taxonomy import Taxonomy
from common.config import ReportsSection
from common.privacy import PersonalData
from tests.support.browser import chromium, login, new_page, ready
from tests.support.console import CONSOLE_PASSWORD
from tests.support.servers import make_pg_database

TZ = ZoneInfo("Asia/Shanghai")
AGENT = st.Actor("agent1", "agent")
SUP = st.Actor("sup1", "supervisor")
CG = st.Actor("cg-user", "department", "nj-chengguan")
RS = st.Actor("rs-user", "department", "sz-renshe")
CITIES = {"nanjing": "南京", "suzhou": "苏州"}
# Addresses differ in their digits too: the store's place hash keeps only an address's digits
# (PersonalData.lookup_hash normalises phone numbers), so 中山路1号 and 珠江路1号 would be one
# place.
# The report is made on Monday after the week, at noon.
AS_OF = datetime(2026, 3, 9, 12, 0, tzinfo=TZ)
WEEK = period_of("week", date(2026, 3, 4), TZ)


def L(month: int, day: int, hour: int, minute: int = 0) -> datetime:  # noqa: N802
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


DEPARTMENTS = [
    DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing", None, "城管局"),
    DepartmentEntry("sz-renshe", "苏州市人力资源和社会保障局", "city", "suzhou", None, "人社局"),
]


async def seed(lp: CaseLoop, clock: dict[str, datetime]) -> dict[str, str]:
    """The week above, through the loop store; the case numbers by name."""

    def now(t: datetime) -> None:
        clock["now"] = t.astimezone(UTC)

    async def new(t: datetime, city: str, caller: str, appeal: str | None = None,
                  matter: str = "urban.sanitation.street_vending", address: str = "") -> str:
        now(t)
        number = await lp.create_case(channel="web", city=city, caller=caller)
        if appeal:
            await lp.act(number, AGENT, st.Command("classify"), Details(
                appeal_type=appeal, matter=matter, district="d1", address=address))
        return number

    async def do(t: datetime, number: str, actor: st.Actor, action: str,
                 details: Details | None = None, **kw: object) -> None:
        now(t)
        await lp.act(number, actor, st.Command(action, **kw), details)  # type: ignore[arg-type]

    async def answered(number: str, lead: st.Actor, replied: datetime) -> None:
        await do(replied, number, lead, "reply", Details(contacted=True), reason="已处理")
        await do(replied + timedelta(minutes=1), number, SUP, "review", accept=True)

    n: dict[str, str] = {}
    n["P0"] = await new(L(2, 27, 9), "nanjing", "13800000000", "complaint",
                        address="鼓楼区中山路101号")
    await do(L(2, 27, 9), n["P0"], AGENT, "dispatch", lead="nj-chengguan")
    await do(L(2, 27, 10), n["P0"], CG, "sign")
    await answered(n["P0"], CG, L(3, 4, 10))
    await do(L(3, 4, 11), n["P0"], AGENT, "follow_up", resolved=True, satisfaction="satisfied")

    n["N0"] = await new(L(3, 1, 23, 30), "nanjing", "13800000010")

    n["N1"] = await new(L(3, 2, 9), "nanjing", "13800000001", "complaint",
                        address="玄武区珠江路201号")
    await do(L(3, 2, 9), n["N1"], AGENT, "dispatch", lead="nj-chengguan")
    await do(L(3, 2, 10), n["N1"], CG, "sign")
    await answered(n["N1"], CG, L(3, 4, 9))
    await do(L(3, 4, 12), n["N1"], AGENT, "follow_up", resolved=True, satisfaction="basic")

    n["N2"] = await new(L(3, 3, 9), "nanjing", "13800000001", "complaint",
                        matter="urban.sanitation.garbage", address="玄武区珠江路202号")
    await do(L(3, 3, 9), n["N2"], AGENT, "dispatch", lead="nj-chengguan", assist=("sz-renshe",))
    await do(L(3, 3, 10), n["N2"], RS, "sign")
    await do(L(3, 3, 12), n["N2"], CG, "sign")
    await answered(n["N2"], CG, L(3, 5, 9))
    await do(L(3, 5, 12), n["N2"], AGENT, "follow_up", resolved=False,
             satisfaction="unsatisfied")
    await do(L(3, 5, 13), n["N2"], CG, "sign")
    await answered(n["N2"], CG, L(3, 6, 12))
    await do(L(3, 7, 10), n["N2"], AGENT, "follow_up", resolved=True, satisfaction="satisfied")

    n["N3"] = await new(L(3, 4, 9), "nanjing", "13800000003", "consultation",
                        matter="labour.social_security.card", address="秦淮区301号")
    await do(L(3, 4, 9, 5), n["N3"], AGENT, "finish_direct")

    n["N4"] = await new(L(3, 2, 8), "nanjing", "13800000004", "help",
                        matter="utilities.water.outage", address="建邺区401号")
    await do(L(3, 2, 9), n["N4"], AGENT, "dispatch", lead="nj-chengguan")
    await do(L(3, 2, 10), n["N4"], CG, "sign")
    await do(L(3, 4, 9), n["N4"], CG, "request_extension", days=2, reason="需协调供水公司")
    await do(L(3, 4, 10), n["N4"], SUP, "decide_extension", accept=True)
    await answered(n["N4"], CG, L(3, 6, 9))
    await do(L(3, 6, 10), n["N4"], AGENT, "follow_up", reached=False)

    n["N5"] = await new(L(3, 6, 9), "nanjing", "13800000005", "complaint",
                        matter="environment.noise.construction_noise", address="雨花台区501号")
    await do(L(3, 6, 9), n["N5"], AGENT, "dispatch", lead="nj-chengguan")

    n["N6"] = await new(L(3, 8, 23, 30), "nanjing", "13800000006")
    await do(L(3, 8, 23, 40), n["N6"], AGENT, "merge", Details(merge_into=n["N1"]))
    n["N7"] = await new(L(3, 9, 0, 30), "nanjing", "13800000007")

    n["S1"] = await new(L(3, 2, 10), "suzhou", "13800000008", "help",
                        matter="labour.wages.unpaid_wages", address="姑苏区人民路601号")
    await do(L(3, 2, 10), n["S1"], AGENT, "dispatch", lead="sz-renshe")
    await do(L(3, 2, 11), n["S1"], RS, "sign")
    await answered(n["S1"], RS, L(3, 6, 10))
    await do(L(3, 6, 15), n["S1"], AGENT, "follow_up", resolved=False,
             satisfaction="unsatisfied")

    n["S2"] = await new(L(3, 3, 10), "suzhou", "13800000009", "consultation",
                        matter="urban.roads.street_lights", address="工业园区701号")
    await do(L(3, 3, 10), n["S2"], AGENT, "dispatch", lead="sz-renshe")
    await do(L(3, 3, 10, 30), n["S2"], RS, "return", reason="路灯归城管")
    await do(L(3, 3, 11), n["S2"], AGENT, "dispatch", lead="nj-chengguan")
    await do(L(3, 3, 12), n["S2"], CG, "sign")
    await answered(n["S2"], CG, L(3, 4, 10))
    await do(L(3, 4, 12), n["S2"], AGENT, "follow_up", resolved=False, satisfaction="basic")
    await do(L(3, 4, 13), n["S2"], CG, "sign")
    await answered(n["S2"], CG, L(3, 5, 11))
    await do(L(3, 5, 15), n["S2"], AGENT, "follow_up", resolved=True, satisfaction="satisfied")

    n["S3"] = await new(L(3, 7, 10), "suzhou", "13800000011", "complaint",
                        matter="labour.wages.unpaid_wages", address="姑苏区 人民路 601 号")
    await do(L(3, 7, 10), n["S3"], AGENT, "dispatch", lead="sz-renshe")
    await do(L(3, 7, 11), n["S3"], RS, "sign")
    clock["now"] = AS_OF.astimezone(UTC)
    return n


# The week's figures worked out by hand from the table above (numerators, denominators):
#
# 按时签收 (sign limit in the week; S2's first dispatch, returned unsigned before its limit,
# left out): CG N1 ✓, N2 ✗, N2 r2 ✓, N4 ✓, N5 ✗, S2 r2 ✓, S2 r3 ✓ = 5/7;
# RS N2 协办 ✓, N2 r2 协办 ✗, S1 ✓, S1 r2 ✗, S3 ✓ = 3/5.
# 按时办结 (主办, limit in the week; S2's returned first dispatch left out): CG P0 ✗, N1 ✓,
# N2 ✓, N4 ✓ (thanks to the extension), S2 r2 ✓, S2 r3 ✓ = 5/6; RS S1 ✗ = 0/1.
# 平均办理时长 (主办 replies in the week): CG 121+48+48+24+96+23+23 = 383 h over 7;
# RS 96 h over 1.
# 回访 reached in the week (the case's latest): CG P0 满意, N1 基本满意, N2 满意, S2 满意 —
# all resolved; RS S1 不满意, unresolved. N4 was not reached.
# 重办 (dispatched cases closed or followed up in the week): CG P0, N1, N2*, N4, S2* = 2/5;
# RS S1* = 1/1.
# 受理 in the week: CG N1, N2, N4, N5, S2; RS S1, S3; no department N3, N6.
# 重复诉求: N2 (CG, Nanjing), S3 (RS, Suzhou).
BY_DEPARTMENT = {
    "nj-chengguan": dict(accepted=5, repeats=1, sign_due=7, signed_on_time=5, handle_due=6,
                         handled_on_time=5, followups=4, satisfied=4, resolved=4,
                         reopen_base=5, reopened=2, replied=7, handle_hours=383.0),
    "sz-renshe": dict(accepted=2, repeats=1, sign_due=5, signed_on_time=3, handle_due=1,
                      handled_on_time=0, followups=1, satisfied=0, resolved=0, reopen_base=1,
                      reopened=1, replied=1, handle_hours=96.0),
    None: dict(accepted=2, repeats=0, sign_due=0, signed_on_time=0, handle_due=0,
               handled_on_time=0, followups=0, satisfied=0, resolved=0, reopen_base=0,
               reopened=0, replied=0, handle_hours=0.0),
}
# By the case's city: Nanjing P0, N0–N7; Suzhou S1–S3.
BY_CITY = {
    "nanjing": dict(accepted=6, repeats=1, sign_due=7, signed_on_time=4, handle_due=4,
                    handled_on_time=3, followups=3, satisfied=3, resolved=3, reopen_base=4,
                    reopened=1, replied=5, handle_hours=337.0),
    "suzhou": dict(accepted=3, repeats=1, sign_due=5, signed_on_time=4, handle_due=3,
                   handled_on_time=2, followups=2, satisfied=1, resolved=1, reopen_base=2,
                   reopened=2, replied=3, handle_hours=142.0),
}
TOTAL = dict(accepted=9, repeats=2, sign_due=12, signed_on_time=8, handle_due=7,
             handled_on_time=5, followups=5, satisfied=4, resolved=4, reopen_base=6,
             reopened=3, replied=8, handle_hours=479.0)
RATES = {  # the rates of the rows above, worked out by hand
    "nj-chengguan": dict(sign_rate=5 / 7, handle_rate=5 / 6, satisfaction_rate=1.0,
                         resolution_rate=1.0, reopen_rate=2 / 5, repeat_rate=1 / 5,
                         avg_handle_hours=383 / 7),
    "sz-renshe": dict(sign_rate=3 / 5, handle_rate=0.0, satisfaction_rate=0.0,
                      resolution_rate=0.0, reopen_rate=1.0, repeat_rate=1 / 2,
                      avg_handle_hours=96.0),
    "nanjing": dict(sign_rate=4 / 7, handle_rate=3 / 4, satisfaction_rate=1.0,
                    resolution_rate=1.0, reopen_rate=1 / 4, repeat_rate=1 / 6,
                    avg_handle_hours=67.4),
    "suzhou": dict(sign_rate=4 / 5, handle_rate=2 / 3, satisfaction_rate=1 / 2,
                   resolution_rate=1 / 2, reopen_rate=1.0, repeat_rate=1 / 3,
                   avg_handle_hours=142 / 3),
    "total": dict(sign_rate=8 / 12, handle_rate=5 / 7, satisfaction_rate=4 / 5,
                  resolution_rate=4 / 5, reopen_rate=3 / 6, repeat_rate=2 / 9,
                  avg_handle_hours=479 / 8),
}


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
async def week(request, tmp_path_factory, pg_admin):
    """The seeded week (once per database for the module's tests): the reports over it."""
    drop = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('reports') / 'hotline.db'}"
    else:
        url, drop = await make_pg_database(pg_admin)
    engine = make_engine(url)
    await migrate(engine)
    clock = {"now": L(2, 27, 9).astimezone(UTC)}
    sessions = sessionmaker(engine)
    lp = CaseLoop(sessions, PersonalData("loop-test-key-0123456789abcdef"), Taxonomy.load(),
                  clock=lambda: clock["now"])
    await lp.upsert_departments(DEPARTMENTS)
    numbers = await seed(lp, clock)
    reports = LoopReports(sessions, "Asia/Shanghai", CITIES, clock=lambda: clock["now"])
    yield reports, numbers, sessions
    await engine.dispose()
    if drop is not None:
        await drop()


def figures_of(row) -> dict:
    return {k: getattr(row.figures if hasattr(row, "figures") else row, k) for k in TOTAL}


def rates_of(fig) -> dict:
    return {k: getattr(fig, k) for k in RATES["total"]}


async def test_the_weeks_figures_by_department_equal_the_hand_computed_ones(week):
    reports, _, _ = week
    r = await reports.report(Query(WEEK, "department"))
    assert r.period.start == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert r.period.label() == "2026年第10周（3月2日—3月8日）"
    assert [row.key for row in r.rows] == ["nj-chengguan", "sz-renshe", None]
    assert [row.name for row in r.rows] == ["南京市城市管理局", "苏州市人力资源和社会保障局", ""]
    for row in r.rows:
        assert figures_of(row) == pytest.approx(BY_DEPARTMENT[row.key]), row.key
        if row.key is not None:
            assert rates_of(row.figures) == pytest.approx(RATES[row.key]), row.key
    assert figures_of(r.total) == pytest.approx(TOTAL)
    assert rates_of(r.total) == pytest.approx(RATES["total"])
    # Accepted and closed per local day, Monday to Sunday.
    assert [(p.label, p.accepted, p.closed) for p in r.series] == [
        ("2026-03-02", 3, 0), ("2026-03-03", 2, 0), ("2026-03-04", 1, 3), ("2026-03-05", 0, 1),
        ("2026-03-06", 1, 1), ("2026-03-07", 1, 1), ("2026-03-08", 1, 0)]


async def test_the_weeks_figures_by_city_and_within_one_city(week):
    reports, _, _ = week
    r = await reports.report(Query(WEEK, "city"))
    assert [(row.key, row.name) for row in r.rows] == [("nanjing", "南京"), ("suzhou", "苏州")]
    for row in r.rows:
        assert figures_of(row) == pytest.approx(BY_CITY[row.key]), row.key
        assert rates_of(row.figures) == pytest.approx(RATES[row.key]), row.key
    assert figures_of(r.total) == pytest.approx(TOTAL)
    # Suzhou's cases only, by department: CG holds S2 (after RS returned it; 23 h + 23 h),
    # RS S1 and S3.
    r = await reports.report(Query(WEEK, "department", city="suzhou"))
    assert [row.key for row in r.rows] == ["nj-chengguan", "sz-renshe"]
    assert figures_of(r.rows[0]) == pytest.approx(dict(
        accepted=1, repeats=0, sign_due=2, signed_on_time=2, handle_due=2, handled_on_time=2,
        followups=1, satisfied=1, resolved=1, reopen_base=1, reopened=1, replied=2,
        handle_hours=46.0))
    # RS without its two 协办 dispatches on Nanjing's N2: signing S1 ✓, S1 r2 ✗, S3 ✓.
    assert figures_of(r.rows[1]) == pytest.approx({**BY_DEPARTMENT["sz-renshe"],
                                                   "sign_due": 3, "signed_on_time": 2})


async def test_a_day_and_a_month_are_the_centres_not_utcs(week):
    reports, _, _ = week
    tue = await reports.report(Query(period_of("day", date(2026, 3, 3), TZ), "city"))
    assert tue.period.label() == "2026年3月3日"
    got = {row.key: (row.figures.accepted, row.figures.sign_due, row.figures.signed_on_time)
           for row in tue.rows}
    # N2 and S2 accepted; signing due that day: N2's CG ✗ and RS ✓, S2's second ✓.
    assert got == {"nanjing": (1, 2, 1), "suzhou": (1, 1, 1)}
    assert len(tue.series) == 24 and sum(p.accepted for p in tue.series) == 2
    assert [p.label for p in tue.series if p.accepted] == ["09", "10"]
    march = await reports.report(Query(period_of("month", date(2026, 3, 20), TZ), "city"))
    assert march.period.label() == "2026年3月"
    # N0 (Mar 1 23:30) and N7 (Mar 9 00:30) are March's too; P0 (Feb 27) is not.
    assert {row.key: row.figures.accepted for row in march.rows} == {"nanjing": 8, "suzhou": 3}
    feb = await reports.report(Query(period_of("month", date(2026, 2, 1), TZ), "department"))
    assert {row.key: row.figures.accepted for row in feb.rows} == {"nj-chengguan": 1}


def csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode())  # a BOM: spreadsheets read the Chinese right
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def xlsx_rows(data: bytes) -> list[dict[str, object]]:
    ws = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    rows = list(ws.iter_rows(min_row=HEADER_ROW, values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def check_export_numbers(report: Report, csv_data: bytes, xlsx_data: bytes) -> None:
    """Every row's every figure in both files, as the report has it."""
    expected = [*report.rows, Row(None, "合计", report.total)]
    from_csv, from_xlsx = csv_rows(csv_data), xlsx_rows(xlsx_data)
    assert len(from_csv) == len(from_xlsx) == len(expected)
    for want, c, x in zip(expected, from_csv, from_xlsx, strict=True):
        fig = want.figures
        assert c["名称"] == x["名称"] == (want.name or {"department": "未派单",
                                                      "city": "未知城市"}[report.by])
        for col in COLUMNS[2:]:
            value = getattr(fig, col.field)
            cell, xcell = c[col.zh + ("（%）" if col.kind == "rate" else "")], x[col.zh]
            if value is None:
                assert cell == "" and xcell is None, col.field
            elif col.kind == "rate":
                assert float(cell) == pytest.approx(round(value * 100, 2)), col.field
                assert xcell == pytest.approx(value), col.field
            elif col.kind == "hours":
                assert float(cell) == pytest.approx(round(value, 2)), col.field
                assert xcell == pytest.approx(value), col.field
            else:
                assert int(cell) == xcell == value, col.field


async def test_csv_and_xlsx_carry_the_reports_numbers(week):
    reports, _, _ = week
    for by in ("department", "city"):
        r = await reports.report(Query(WEEK, by))
        check_export_numbers(r, to_csv(r), to_xlsx(r))
    # The hand-computed figures themselves, read back from the workbook.
    r = await reports.report(Query(WEEK, "department"))
    cg = xlsx_rows(to_xlsx(r))[0]
    assert (cg["受理量"], cg["按时签收"], cg["应签收"], cg["重办"]) == (5, 5, 7, 2)
    assert cg["按时办结率"] == pytest.approx(5 / 6)
    assert cg["平均办理时长（小时）"] == pytest.approx(383 / 7)
    ws = openpyxl.load_workbook(io.BytesIO(to_xlsx(r))).worksheets[0]
    assert ws["B2"].value == "2026年第10周（3月2日—3月8日）"
    assert ws.cell(HEADER_ROW + 1, 6).number_format == "0.00%"
    en = csv_rows(to_csv(r, "en"))
    assert en[-1]["Name"] == "Total" and en[-1]["Accepted"] == "9"


def test_a_name_that_looks_like_a_formula_stays_text():
    period = period_of("day", date(2026, 3, 2), TZ)
    evil = "=HYPERLINK(\"http://x\",\"点此\")"
    r = Report(period, "department", None, None, [Row("d1", evil, Figures(accepted=1))],
               Figures(accepted=1), [])
    assert csv_rows(to_csv(r))[0]["名称"] == "'" + evil
    ws = openpyxl.load_workbook(io.BytesIO(to_xlsx(r))).worksheets[0]
    cell = ws.cell(HEADER_ROW + 1, 1)
    assert cell.value == "'" + evil and cell.data_type == "s"


async def test_the_worker_writes_the_days_and_weeks_files_once(week, tmp_path):
    reports, _, _ = week
    # Monday after the week, 07:00: Sunday's daily report and the week's are due.
    clock = {"now": L(3, 9, 7)}
    files = ReportFiles(reports, tmp_path / "reports")
    worker = ReportsWorker(files, ReportsSection(daily_at=time(6, 0), weekly_on="monday"), TZ,
                           clock=lambda: clock["now"])
    written = await worker.run_once()
    names = sorted(p.relative_to(tmp_path / "reports").as_posix() for p in written)
    assert names == sorted(f"{folder}/loop-{key}-{by}.{ext}"
                           for folder, key in (("daily", "2026-03-08"), ("weekly", "2026-W10"),
                                               ("monthly", "2026-02"))
                           for by in ("department", "city") for ext in ("csv", "xlsx"))
    weekly = tmp_path / "reports" / "weekly"
    by_dept = csv_rows((weekly / "loop-2026-W10-department.csv").read_bytes())
    assert [(r["编码"], r["受理量"], r["按时签收率（%）"]) for r in by_dept] == [
        ("nj-chengguan", "5", "71.43"), ("sz-renshe", "2", "60.00"), ("", "2", ""),
        ("", "9", "66.67")]
    by_city = xlsx_rows((weekly / "loop-2026-W10-city.xlsx").read_bytes())
    assert [(r["编码"], r["受理量"], r["重办"]) for r in by_city] == [
        ("nanjing", 6, 1), ("suzhou", 3, 2), (None, 9, 3)]  # an empty cell
    daily = csv_rows((tmp_path / "reports" / "daily" / "loop-2026-03-08-city.csv").read_bytes())
    # Sunday: N6 in Nanjing; Suzhou named though it had no case that day.
    assert [(r["名称"], r["编码"], r["受理量"]) for r in daily] == [
        ("南京", "nanjing", "1"), ("苏州", "suzhou", "0"), ("合计", "", "1")]
    before = {p: p.read_bytes() for p in written}
    # No clock inside a workbook: its dates and its ZIP entries' are fixed.
    book = zipfile.ZipFile(weekly / "loop-2026-W10-city.xlsx")
    assert {i.date_time for i in book.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert b">2000-01-01T00:00:00Z</dcterms:modified>" in book.read("docProps/core.xml")
    # Again: nothing is due that is not written; written again by hand: the same bytes.
    assert await worker.run_once() == []
    await files.write(WEEK)
    await files.write(period_of("day", date(2026, 3, 8), TZ))
    assert {p: p.read_bytes() for p in written} == before
    # Before 06:00 on Monday, Saturday's day and the week before are the latest due.
    clock["now"] = L(3, 9, 5, 59)
    assert sorted(p.name for p in await worker.run_once()) == sorted(
        f"loop-{key}-{by}.{ext}" for key in ("2026-03-07", "2026-W09")
        for by in ("department", "city") for ext in ("csv", "xlsx"))
    # The first of April: March's monthly files. Nanjing: the week's 6, N0 (1 March) and N7
    # (9 March); Suzhou: the week's 3; P0 (27 February) is not March's.
    clock["now"] = L(4, 1, 7)
    await worker.run_once()
    march = csv_rows((tmp_path / "reports" / "monthly" / "loop-2026-03-city.csv").read_bytes())
    assert [(r["编码"], r["受理量"]) for r in march] == [
        ("nanjing", "8"), ("suzhou", "3"), ("", "11")]


@pytest.mark.asterisk
@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_reports_over_http_for_supervisors_within_their_city(console):
    svc = console.service
    clock = {"now": L(2, 27, 9).astimezone(UTC)}
    lp = CaseLoop(svc.store.sessions, svc.personal, Taxonomy.load(),
                  clock=lambda: clock["now"])
    await lp.upsert_departments(DEPARTMENTS)
    await seed(lp, clock)
    users = Users(svc.store.sessions)
    await users.add("sup-sz", CONSOLE_PASSWORD, "supervisor", city="suzhou")
    await users.add("auditor1", CONSOLE_PASSWORD, "auditor")
    sup, admin, sz = [await console.user(u) for u in ("sup", "admin", "sup-sz")]
    week_q = "period=week&date=2026-03-04"

    # The province supervisor: every city, every department.
    status, doc = await sup.get(f"/api/reports/loop?{week_q}&by=city")
    assert status == 200, doc
    assert doc["period"]["label"] == "2026年第10周（3月2日—3月8日）"
    assert doc["cities"] == [{"id": "nanjing", "name": "南京"}, {"id": "suzhou", "name": "苏州"}]
    got = {r["key"]: {k: r[k] for k in TOTAL} for r in doc["rows"]}
    assert got == {k: pytest.approx(v) for k, v in BY_CITY.items()}
    assert doc["rows"][0]["sign_rate"] == pytest.approx(4 / 7)
    assert {k: doc["total"][k] for k in TOTAL} == pytest.approx(TOTAL)
    status, doc = await admin.get(f"/api/reports/loop?{week_q}&by=department")
    assert status == 200 and [r["key"] for r in doc["rows"]] == [
        "nj-chengguan", "sz-renshe", None]
    assert doc["rows"][0]["avg_handle_hours"] == pytest.approx(383 / 7)

    # Exports: the same numbers in the CSV and the workbook.
    for_check = await svc.loop_reports.report(Query(WEEK, "department"))
    files = {}
    for fmt in ("csv", "xlsx"):
        resp = await sup.client.get(f"/api/reports/loop/export?{week_q}&format={fmt}")
        assert resp.status == 200
        assert resp.headers["Content-Disposition"] == (
            f'attachment; filename="loop-2026-W10-department.{fmt}"')
        files[fmt] = await resp.read()
    check_export_numbers(for_check, files["csv"], files["xlsx"])

    # A city's supervisor: that city's cases only, by default and when asking for it.
    status, doc = await sz.get(f"/api/reports/loop?{week_q}")
    assert status == 200 and doc["city"] == "suzhou"
    assert doc["cities"] == [{"id": "suzhou", "name": "苏州"}]
    assert {r["key"]: (r["accepted"], r["sign_due"]) for r in doc["rows"]} == {
        "nj-chengguan": (1, 2), "sz-renshe": (2, 3)}
    status, doc = await sz.get(f"/api/reports/loop?{week_q}&by=city&city=suzhou")
    assert status == 200 and [r["key"] for r in doc["rows"]] == ["suzhou"]
    for path in (f"/api/reports/loop?{week_q}&city=nanjing",
                 f"/api/reports/loop/export?{week_q}&city=nanjing&format=xlsx"):
        status, doc = await sz.get(path)
        assert (status, doc["error"]) == (403, "forbidden"), path

    # Other roles, no session, and what the description refuses.
    for name in ("agent1001", "auditor1"):
        user = await console.user(name)
        for path in ("/api/reports/loop", "/api/reports/loop/export"):
            status, _ = await user.get(path)
            assert status == 403, (name, path)
    status, _ = await (await console.anonymous()).get("/api/reports/loop")
    assert status == 401
    for bad in ("period=year", "date=1999-12-31", "date=2026-02-30", "by=unit",
                "city=atlantis", "format=pdf"):
        status, doc = await sup.get(f"/api/reports/loop/export?{bad}")
        assert status == 422, (bad, doc)

    # Audited: who read which report, and the exports with their format.
    async with svc.store.sessions() as s:
        entries = (await s.execute(sa.select(AuditEntry).where(
            AuditEntry.action.like("report.%")).order_by(AuditEntry.id))).scalars().all()
    seen = [(e.username, e.action, e.detail.get("city"), e.detail.get("format"))
            for e in entries]
    assert seen == [("sup", "report.view", None, None), ("admin", "report.view", None, None),
                    ("sup", "report.export", None, "csv"),
                    ("sup", "report.export", None, "xlsx"),
                    ("sup-sz", "report.view", "suzhou", None),
                    ("sup-sz", "report.view", "suzhou", None)]
    assert all(e.detail["period"] == "2026-W10" for e in entries)


@pytest.mark.asterisk
@pytest.mark.slow
async def test_the_reports_page_shows_the_figures_and_charts_in_chinese_first(console, artifacts):

    svc = console.service
    clock = {"now": L(2, 27, 9).astimezone(UTC)}
    lp = CaseLoop(svc.store.sessions, svc.personal, Taxonomy.load(),
                  clock=lambda: clock["now"])
    await lp.upsert_departments(DEPARTMENTS)
    await seed(lp, clock)
    async with chromium() as browser:
        page = await new_page(browser, height=1100)
        await login(browser, console.base_url, "sup", page=page)
        await page.wait_for_url("**/wallboard")
        await page.click('a[href="/reports"]')
        await page.wait_for_url("**/reports")
        await ready(page)
        await page.fill("#q-date", "2026-03-04")
        await page.dispatch_event("#q-date", "change")
        cg = '#figures tr[data-key="nj-chengguan"]'
        await page.wait_for_selector(cg)
        assert await page.text_content("#title") == (
            "2026年第10周（3月2日—3月8日） · 按承办单位")
        assert await page.text_content(f'{cg} td:first-child') == "南京市城市管理局"
        assert await page.text_content(f'{cg} td[data-f="accepted"]') == "5"
        assert await page.text_content(f'{cg} td[data-f="sign_rate"]') == "71.4%"
        assert await page.text_content(f'{cg} td[data-f="avg_handle_hours"]') == "54.7"
        assert await page.text_content(
            '#figures tr[data-key="total"] th[data-f="accepted"]') == "9"
        assert await page.text_content('#figures tr[data-key=""] td:first-child') == "未派单"
        # The charts: three rates for each of the two departments, seven days of bars.
        assert await page.locator("#rates-svg rect.bar").count() == 6
        assert await page.locator("#trend-svg rect.bar").count() == 7
        assert await page.get_attribute("#export-xlsx", "href") == (
            "/api/reports/loop/export?period=week&by=department&date=2026-03-04"
            "&format=xlsx&lang=zh-CN")
        await page.screenshot(path=str(artifacts / "reports-week-by-department.png"),
                              full_page=True)
        # The CSV link downloads the same report.
        async with page.expect_download() as dl:
            await page.click("#export-csv")
        download = await dl.value
        data = await asyncio.to_thread(Path(await download.path()).read_bytes)
        assert csv_rows(data)[0]["受理量"] == "5"
        # By city, in English.
        await page.select_option("#q-by", "city")
        await page.wait_for_selector('#figures tr[data-key="suzhou"]')
        await page.click("#lang")
        await page.wait_for_function(
            "() => document.querySelector('#title').textContent.startsWith('Week 10')")
        assert await page.text_content('#figures tr[data-key="nanjing"] td:first-child') \
            == "南京"
        assert await page.text_content("#figures thead th:nth-child(2)") == "Accepted"
        await page.screenshot(path=str(artifacts / "reports-week-by-city-en.png"),
                              full_page=True)
