"""The 红黄灯 sweep: keeps every case's traffic light in step with the clock, and opens a 督办单
when a department's time limit runs out.

What a dispatch's light is comes from one pure function, ``assess()``: while it waits to be
signed for, the sign limit and the handling limit both run; once signed, the handling limit.
A case's light is the worst of its current round's active dispatches (an assisting department
late is as much a problem as the lead one).

When a limit is overdue the sweep opens a supervision order for that dispatch and kind (the
table's natural key, one per dispatch per kind) with a ``loop.supervise`` fact on the case's
timeline, and tells the department (``notify``: the webhook room's outbox, in the same
transaction). The fact
takes the case's next version as its key like every change of the loop store
(cases/loop/store.py), so a person changing the case at the same moment collides with the
sweep instead of one silently overwriting the other; the loser tries again (the person) or at
the next run (the sweep). Running the sweep again changes nothing: lights are already what they
are, and the orders exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.loop import states as st
from cases.loop.calendar import WorkCalendar
from cases.loop.deadlines import Light, TimeLimits, light
from cases.loop.models import CaseWork, Dispatch, SupervisionOrder
from cases.models import CallEvent, Case
from common.db import utcnow
from common.errors import DomainError
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SIGN, HANDLE = "sign", "handle"
SUPERVISION_OPENED = "supervision.opened"
_RANK: dict[str, int] = {"none": 0, "green": 1, "yellow": 2, "red": 3}


class Notify(Protocol):
    """Tells a department something happened to one of its cases (the webhook room's)."""

    async def __call__(self, department_id: str, event: str, payload: dict[str, Any], *,
                       session: AsyncSession | None = None) -> None: ...


@dataclass(frozen=True)
class DispatchClock:
    """What ``assess`` needs of a dispatch."""

    state: str
    dispatched_at: datetime
    sign_due_at: datetime | None
    due_at: datetime | None


@dataclass(frozen=True)
class Assessment:
    light: Light
    overdue: tuple[str, ...]  # SIGN and/or HANDLE


def assess(d: DispatchClock, now: datetime, yellow_share: float,
           calendar: WorkCalendar) -> Assessment | None:
    """The light of one dispatch and the limits it has overrun; None for a dispatch whose
    clock has stopped (replied, returned, cancelled)."""
    if d.state not in (st.PENDING, st.SIGNED):
        return None
    lights: dict[str, Light] = {}
    if d.state == st.PENDING and d.sign_due_at is not None:
        lights[SIGN] = light(d.dispatched_at, d.sign_due_at, now, yellow_share, calendar)
    if d.due_at is not None:
        lights[HANDLE] = light(d.dispatched_at, d.due_at, now, yellow_share, calendar)
    if not lights:
        return None
    worst = max(lights.values(), key=_RANK.__getitem__)
    return Assessment(worst, tuple(k for k, v in lights.items() if v == "red"))


def worst(lights: Sequence[str]) -> str:
    return max(lights, key=_RANK.__getitem__, default="none")


@dataclass
class SweepReport:
    cases: int = 0  # open cases looked at
    changed: int = 0  # cases whose light changed or whose orders opened
    orders: int = 0  # supervision orders opened
    skipped: int = 0  # cases changed by someone meanwhile (seen again next run)
    failed: int = 0  # cases whose deadlines the calendar cannot count (logged)


@dataclass(frozen=True)
class _Opened:
    department: str
    payload: dict[str, Any]


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


class DeadlineSweep:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], calendar: WorkCalendar,
                 limits: TimeLimits, *, now: Callable[[], datetime] = utcnow,
                 notify: Notify | None = None):
        self.sessions = sessions
        self.calendar = calendar
        self.limits = limits
        self.now = now
        self.notify = notify
        self.runs = 0

    async def run(self) -> SweepReport:
        now = self.now()
        report = SweepReport()
        async with self.sessions() as session:
            rows = (await session.execute(
                select(CaseWork.case_id, CaseWork.version, CaseWork.light)
                .where(CaseWork.state.in_(st.AT_DEPARTMENT)).order_by(CaseWork.case_id)
            )).all()
        for case_id, version, current in rows:
            report.cases += 1
            opened: list[_Opened] = []
            try:
                async with self.sessions() as session, session.begin():
                    outcome = await self._case(session, case_id, version, current, now, opened)
                    # In the same transaction: the notice is written if and only if the
                    # order is (the webhook room's transactional outbox).
                    for o in opened:
                        await self._tell(o, session)
            except IntegrityError:
                outcome = "skipped"  # another sweep, or a person, changed the case first
                opened.clear()
            except DomainError as exc:
                # A calendar that does not cover the deadline's year (calendar_not_covered):
                # this case waits for the configuration; the others go on.
                log.error("deadline sweep: case left as it is", extra={
                    "case_id": case_id, "code": exc.code, "why": exc.message})
                outcome = "failed"
                opened.clear()
            if outcome == "skipped":
                report.skipped += 1
            elif outcome == "failed":
                report.failed += 1
            elif outcome == "changed":
                report.changed += 1
            report.orders += len(opened)
        self.runs += 1
        if report.orders or report.skipped:
            log.info("deadline sweep", extra={"cases": report.cases, "changed": report.changed,
                                              "orders": report.orders,
                                              "skipped": report.skipped})
        return report

    async def _case(self, session: AsyncSession, case_id: int, version: int, current: str,
                    now: datetime, opened: list[_Opened]) -> str:
        work = await session.get(CaseWork, case_id)
        if work is None or work.version != version or work.state not in st.AT_DEPARTMENT:
            return "skipped"
        dispatches = list((await session.execute(select(Dispatch).where(
            Dispatch.case_id == case_id, Dispatch.round == work.round).order_by(Dispatch.id)
        )).scalars())
        lights: list[str] = []
        overdue: list[tuple[Dispatch, str]] = []
        for d in dispatches:
            a = assess(DispatchClock(d.state, d.dispatched_at, d.sign_due_at, d.due_at), now,
                       self.limits.yellow_share, self.calendar)
            if a is not None:
                lights.append(a.light)
                overdue += [(d, kind) for kind in a.overdue]
        new_light = worst(lights) if lights else current
        orders = {(o.dispatch_id, o.kind): o for o in (await session.execute(
            select(SupervisionOrder).where(SupervisionOrder.case_id == case_id))).scalars()}
        # Overdue with no order yet, or with one closed since (a reply sent back by review
        # puts the case in the department's hands again, still late): the order is open again.
        to_open = [(d, kind) for d, kind in overdue
                   if (d.id, kind) not in orders or orders[d.id, kind].closed_at is not None]
        if not to_open:
            if new_light == current:
                return "same"
            # Only the light: no fact, no new version, but not over someone's newer change.
            done = cast(CursorResult[Any], await session.execute(
                update(CaseWork).where(CaseWork.case_id == case_id, CaseWork.version == version)
                .values(light=new_light).execution_options(synchronize_session=False)))
            return "changed" if done.rowcount else "skipped"
        number = (await session.execute(select(Case.number).where(Case.id == case_id))
                  ).scalar_one()
        facts = []
        for d, kind in to_open:
            order = orders.get((d.id, kind))
            if order is None:
                session.add(SupervisionOrder(case_id=case_id, dispatch_id=d.id,
                                             department_id=d.department_id, kind=kind,
                                             opened_at=now))
            else:
                order.closed_at = None
            due = _iso(d.sign_due_at if kind == SIGN else d.due_at)
            opened.append(_Opened(d.department_id, {
                "case": number, "round": d.round, "role": d.role, "kind": kind,
                "due_at": due, "opened_at": _iso(now), "again": order is not None}))
            facts.append({"department": d.department_id, "kind": kind, "dispatch": d.id,
                          "due_at": due, "again": order is not None})
        work.version += 1
        work.light, work.supervised = new_light, True
        session.add(CallEvent(
            case_id=case_id, key=f"loop:{work.version}", kind="loop.supervise", at=now,
            source="system", detail={"by": st.SYSTEM, "role": st.SYSTEM, "from": work.state,
                                     "to": work.state, "orders": facts}))
        await session.flush()
        return "changed"

    async def _tell(self, o: _Opened, session: AsyncSession) -> None:
        if self.notify is not None:
            await self.notify(o.department, SUPERVISION_OPENED, o.payload, session=session)


class SweepWorker:
    """Runs the sweep at start and then every ``interval_s``; a failed run is tried again at
    the next interval."""

    def __init__(self, sweep: DeadlineSweep, interval_s: float):
        self.sweep = sweep
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="deadline-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="deadline sweep")
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deadline sweep failed (tried again at the next interval)")
            await asyncio.sleep(self.interval_s)
