"""The 红黄灯 sweep on real databases (SQLite and PostgreSQL) with an injected clock: cases go
green → yellow → red in working time, a 督办单 opens once per dispatch and limit with a fact on
the timeline and the department told, and a second run changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cases.db import make_engine, migrate, sessionmaker
from cases.loop import states as st
from cases.loop.calendar import WorkCalendar
from cases.loop.deadlines import TimeLimits, WorkingTimePolicy
from cases.loop.models import CaseWork
from cases.loop.plugin import CaseLoopPlugin
from cases.loop.store import CaseLoop, DepartmentEntry, Details
from cases.loop.sweep import DeadlineSweep, SweepReport
from cases.loop.taxonomy import Taxonomy
from common.config import load_config
from common.privacy import PersonalData
from lab.harness import EXAMPLE_CONFIG
from tests.support.waiting import eventually

SH = ZoneInfo("Asia/Shanghai")
AGENT = st.Actor("agent1", "agent")
CG = st.Actor("cg-user", "department", "nj-chengguan")
RS = st.Actor("rs-user", "department", "nj-renshe")
SUP = st.Actor("sup", "supervisor")
KEY = "deadline-test-key-0123456789abcdef"


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


class Told:
    """The departments' side of ``notify`` (the webhook room's in the service): what they
    were told, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, department_id: str, event: str, payload: dict[str, Any], *,
                       session: Any = None) -> None:
        assert session is not None  # told inside the sweep's transaction
        self.calls.append((department_id, event, payload))


class Bench:
    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.now = at(2026, 3, 13, 9)
        calendar, limits = WorkCalendar(), TimeLimits()
        self.loop = CaseLoop(sessions, PersonalData(KEY), Taxonomy.load(),
                             WorkingTimePolicy(limits, calendar), clock=lambda: self.now)
        self.told = Told()
        self.sweep = DeadlineSweep(sessions, calendar, limits, now=lambda: self.now,
                                   notify=self.told)

    async def case(self, appeal: str, *, assist: tuple[str, ...] = ()) -> str:
        number = await self.loop.create_case(channel="web", city="nanjing", caller="13812345678")
        await self.loop.act(number, AGENT, st.Command("classify"), Details(
            appeal_type=appeal, matter="urban.sanitation.street_vending"))
        await self.loop.act(number, AGENT, st.Command("dispatch", lead="nj-chengguan",
                                                      assist=assist))
        return number

    async def sweep_at(self, moment: datetime) -> SweepReport:
        self.now = moment
        return await self.sweep.run()

    async def light(self, number: str) -> str:
        return str((await self.loop.view(number))["light"])

    async def facts(self, number: str) -> int:
        return len((await self.loop.view(number))["timeline"])


@pytest.fixture
async def bench(migrated_engine):
    engine = migrated_engine
    b = Bench(sessionmaker(engine))
    await b.loop.upsert_departments([
        DepartmentEntry("nanjing", "南京市人民政府", "city", "nanjing"),
        DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing", "nanjing", "城管局"),
        DepartmentEntry("nj-renshe", "南京市人力资源和社会保障局", "city", "nanjing", "nanjing",
                        "人社局"),
    ])
    yield b


async def test_green_yellow_red_and_supervision_once(bench: Bench) -> None:
    # Friday 2026-03-13 09:00: a consultation to 城管 (lead) and 人社 (assist). Sign by 11:00
    # (2 working hours), handled by Monday 09:00 (1 working day = 7.5 office hours).
    number = await bench.case("consultation", assist=("nj-renshe",))
    v = await bench.loop.view(number)
    assert v["sign_due_at"] == at(2026, 3, 13, 11).astimezone(UTC).isoformat()
    assert v["due_at"] == at(2026, 3, 16, 9).astimezone(UTC).isoformat()
    facts = await bench.facts(number)

    r = await bench.sweep_at(at(2026, 3, 13, 9, 30))
    assert (r.cases, r.changed, r.orders) == (1, 0, 0)
    assert await bench.light(number) == "green"

    # 100 of the 120 minutes to sign are used: yellow.
    r = await bench.sweep_at(at(2026, 3, 13, 10, 40))
    assert (r.changed, r.orders) == (1, 0) and await bench.light(number) == "yellow"
    r = await bench.sweep_at(at(2026, 3, 13, 10, 40))
    assert (r.changed, r.orders) == (0, 0)

    # 城管 signs in time, 人社 does not: a sign 督办单 for 人社, the case red.
    bench.now = at(2026, 3, 13, 10, 50)
    await bench.loop.act(number, CG, st.Command("sign"))
    r = await bench.sweep_at(at(2026, 3, 13, 11, 1))
    assert (r.changed, r.orders) == (1, 1)
    v = await bench.loop.view(number)
    assert v["light"] == "red" and v["supervised"] is True
    assert [(o["department"], o["kind"], o["closed_at"]) for o in v["supervision"]] == [
        ("nj-renshe", "sign", None)]
    supervise = [f for f in v["timeline"] if f["kind"] == "loop.supervise"]
    assert len(supervise) == 1 and supervise[0]["by"] == "system"
    assert supervise[0]["orders"][0]["kind"] == "sign"
    assert bench.told.calls == [("nj-renshe", "supervision.opened", {
        "case": number, "round": 1, "role": "assist", "kind": "sign",
        "due_at": at(2026, 3, 13, 11).astimezone(UTC).isoformat(),
        "opened_at": at(2026, 3, 13, 11, 1).astimezone(UTC).isoformat(), "again": False})]
    assert await bench.facts(number) == facts + 2  # 城管's sign, the sweep's supervise

    # Running again changes nothing: no second order, fact or message.
    version = v["version"]
    r = await bench.sweep_at(at(2026, 3, 13, 11, 1))
    assert (r.changed, r.orders) == (0, 0)
    v = await bench.loop.view(number)
    assert v["version"] == version and len(v["supervision"]) == 1
    assert len(bench.told.calls) == 1 and await bench.facts(number) == facts + 2

    # 人社 signs late: the handling limit alone counts again (green); its order stays open.
    bench.now = at(2026, 3, 13, 11, 10)
    await bench.loop.act(number, RS, st.Command("sign"))
    r = await bench.sweep_at(at(2026, 3, 13, 11, 15))
    assert await bench.light(number) == "green"
    # 6 of 7.5 working hours used by Friday 16:30 (09:00-12:00, 13:30-16:30): yellow; the
    # weekend uses none.
    await bench.sweep_at(at(2026, 3, 13, 16, 29))
    assert await bench.light(number) == "green"
    await bench.sweep_at(at(2026, 3, 13, 16, 30))
    assert await bench.light(number) == "yellow"
    r = await bench.sweep_at(at(2026, 3, 15, 23, 59))
    assert (r.changed, r.orders) == (0, 0) and await bench.light(number) == "yellow"

    # Monday 09:01: both departments overdue; one fact names both orders.
    r = await bench.sweep_at(at(2026, 3, 16, 9, 1))
    assert (r.changed, r.orders) == (1, 2)
    v = await bench.loop.view(number)
    assert v["light"] == "red"
    assert sorted((o["department"], o["kind"]) for o in v["supervision"]) == [
        ("nj-chengguan", "handle"), ("nj-renshe", "handle"), ("nj-renshe", "sign")]
    supervise = [f for f in v["timeline"] if f["kind"] == "loop.supervise"]
    assert len(supervise) == 2 and len(supervise[1]["orders"]) == 2
    assert sorted((c[0], c[2]["kind"]) for c in bench.told.calls[1:]) == [
        ("nj-chengguan", "handle"), ("nj-renshe", "handle")]
    r = await bench.sweep_at(at(2026, 3, 16, 9, 30))
    assert (r.changed, r.orders) == (0, 0) and len(bench.told.calls) == 3

    # The lead replies: the store closes the orders; the sweep leaves the case alone.
    await bench.loop.act(number, CG, st.Command("reply", reason="已清理占道摊点"),
                         Details(contacted=True))
    r = await bench.sweep_at(at(2026, 3, 17, 9))
    assert r.cases == 0
    v = await bench.loop.view(number)
    assert all(o["closed_at"] for o in v["supervision"])


async def test_an_approved_extension_shows_its_light_at_once(bench: Bench) -> None:
    # A help request (3 working days) dispatched Friday 2026-03-13 09:00, due Wednesday 09:00.
    number = await bench.case("help")
    bench.now = at(2026, 3, 13, 9, 30)
    await bench.loop.act(number, CG, st.Command("sign"))
    await bench.sweep_at(at(2026, 3, 18, 9, 30))
    assert await bench.light(number) == "red"
    await bench.loop.act(number, CG, st.Command("request_extension", days=10,
                                                reason="需协调多个部门"))
    await bench.loop.act(number, SUP, st.Command("decide_extension", accept=True))
    assert await bench.light(number) == "green"  # 3 of 13 working days used
    r = await bench.sweep_at(at(2026, 3, 18, 9, 31))
    assert r.changed == 0 and await bench.light(number) == "green"


async def test_a_reply_sent_back_late_reopens_the_handling_order(bench: Bench) -> None:
    number = await bench.case("consultation")
    bench.now = at(2026, 3, 13, 9, 10)
    await bench.loop.act(number, CG, st.Command("sign"))
    await bench.sweep_at(at(2026, 3, 16, 9, 1))
    bench.now = at(2026, 3, 16, 10)
    await bench.loop.act(number, CG, st.Command("reply", reason="已处理"))
    await bench.loop.act(number, AGENT, st.Command("review", accept=False, reason="未联系市民"))
    r = await bench.sweep_at(at(2026, 3, 16, 10, 5))
    assert r.orders == 1
    v = await bench.loop.view(number)
    assert [(o["kind"], o["closed_at"]) for o in v["supervision"]] == [("handle", None)]
    assert v["supervised"] is True and v["light"] == "red"
    assert [c[2]["again"] for c in bench.told.calls] == [False, True]


async def test_national_day_does_not_turn_a_case_red(bench: Bench) -> None:
    # Wednesday 2026-09-30 16:00, a help request (3 working days): due Saturday 10-10 16:00,
    # the working Saturday after National Day week.
    bench.now = at(2026, 9, 30, 16)
    number = await bench.case("help")
    bench.now = at(2026, 9, 30, 16, 30)
    await bench.loop.act(number, CG, st.Command("sign"))
    assert (await bench.loop.view(number))["due_at"] == \
        at(2026, 10, 10, 16).astimezone(UTC).isoformat()
    await bench.sweep_at(at(2026, 10, 7, 23))
    assert await bench.light(number) == "green"
    # 18 of 22.5 working hours: 1.5 on 09-30, 7.5 on 10-08, 7.5 on 10-09, then 1.5 on 10-10.
    await bench.sweep_at(at(2026, 10, 10, 9, 59))
    assert await bench.light(number) == "green"
    await bench.sweep_at(at(2026, 10, 10, 10))
    assert await bench.light(number) == "yellow"
    r = await bench.sweep_at(at(2026, 10, 10, 16, 1))
    assert r.orders == 1 and await bench.light(number) == "red"


async def test_a_case_changed_meanwhile_is_left_to_the_next_run(bench: Bench) -> None:
    number = await bench.case("consultation")
    bench.now = at(2026, 3, 13, 10, 40)
    # A person's change lands between the sweep's listing and its look at the case.
    listing = bench.sweep.sessions

    class Meanwhile:
        def __init__(self) -> None:
            self.first = True

        def __call__(self) -> Any:
            if self.first:
                self.first = False
                return _After(listing(), bench.loop.act(number, CG, st.Command("sign")))
            return listing()

    bench.sweep.sessions = Meanwhile()  # type: ignore[assignment]  # the interleaving
    r = await bench.sweep.run()
    assert (r.cases, r.skipped, r.changed) == (1, 1, 0)
    assert await bench.light(number) == "green"  # not the yellow of the unsigned dispatch
    bench.sweep.sessions = listing
    r = await bench.sweep.run()
    assert (r.skipped, r.changed) == (0, 0) and await bench.light(number) == "green"


class _After:
    """A session whose closing first lets ``change`` happen (the listing read is done)."""

    def __init__(self, session: Any, change: Any) -> None:
        self.session, self.change = session, change

    async def __aenter__(self) -> Any:
        return await self.session.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self.session.__aexit__(*exc)
        await self.change


async def test_the_plugin_sweeps_and_warns_of_an_unknown_year(tmp_path) -> None:
    cfg = load_config(EXAMPLE_CONFIG)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'hotline.db'}")
    await migrate(engine)
    now = at(2026, 12, 6, 10)
    plugin = CaseLoopPlugin(cfg, sessionmaker(engine), PersonalData(KEY), clock=lambda: now)
    assert plugin.warn_uncovered(now) == [2027]
    await plugin.start()
    try:
        await eventually(lambda: _ran(plugin), what="the sweep's first run")
    finally:
        await plugin.stop()
    declared = cfg.model_copy(update={"case_loop": cfg.case_loop.model_copy(update={
        "calendar_years": [2027], "extra_holidays": [date(2027, 1, 1)]})})
    other = CaseLoopPlugin(declared, sessionmaker(engine), PersonalData(KEY),
                           clock=lambda: now)
    assert other.warn_uncovered(now) == []
    assert not other.calendar.is_workday(date(2027, 1, 1))
    async with sessionmaker(engine)() as session:
        assert (await session.execute(select(func.count()).select_from(CaseWork))
                ).scalar_one() == 0
    await engine.dispose()


async def _ran(plugin: CaseLoopPlugin) -> bool:
    return plugin.sweep.runs >= 1
