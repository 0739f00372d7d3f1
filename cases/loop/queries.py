"""Lists over the loop's tables that more than one room reads: the supervisors' 红黄灯 list
(the hotline side's 督办 page) and the scale benchmark (bench/case_loop_scale.py), which
times this very statement on a million cases.

The list is the open cases a department holds (待签收 or 办理中) whose light the deadline sweep
has turned red or yellow, red first, then the most overdue: the limit that is running now —
signing for the dispatch while it waits to be signed, otherwise handling — earliest first.
Migration 0012 gives it a partial index over those rows only (a few per cent of the cases),
so a page of 50 costs the same whatever the size of the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cases.loop import states as st
from cases.loop.models import CaseWork, Department
from cases.models import Case

ALERT_LIGHTS = ("red", "yellow")
PAGE = 50


@dataclass(frozen=True)
class AlertRow:
    number: str
    state: str
    light: str
    city: str | None
    district: str | None
    appeal_type: str | None
    matter: str | None
    lead_department: str | None
    lead_department_name: str
    round: int
    supervised: bool
    dispatched_at: datetime | None
    sign_due_at: datetime | None
    due_at: datetime | None
    limit_at: datetime | None  # the limit running now (the list's order)


@dataclass(frozen=True)
class AlertPage:
    rows: list[AlertRow]
    total: int | None  # None: not counted


def running_limit() -> ColumnElement[Any]:
    """The limit a case is judged by now: the sign limit while the 主办 has not signed
    (state 待签收), else the handling limit."""
    return case((CaseWork.state == st.DISPATCHED,
                 func.coalesce(CaseWork.sign_due_at, CaseWork.due_at)),
                else_=CaseWork.due_at)


def _where(lights: Sequence[str], department: str | None, city: str | None,
           visible: Any) -> list[ColumnElement[bool]]:
    bad = [x for x in lights if x not in ("red", "yellow", "green")]
    if bad or not lights:
        raise ValueError(f"lights: red, yellow or green, not {bad or 'none'}")
    conds: list[ColumnElement[bool]] = [
        CaseWork.light.in_(tuple(lights)), CaseWork.state.in_(st.AT_DEPARTMENT)]
    if department is not None:
        conds.append(CaseWork.lead_department == department)
    if city is not None:
        conds.append(CaseWork.city == city)
    if visible is not None:
        # A need-to-know condition on Case (agent_desk/access.py Scope.condition).
        conds.append(CaseWork.case_id.in_(select(Case.id).where(visible)))
    return conds


def alert_statement(*, lights: Sequence[str] = ALERT_LIGHTS, department: str | None = None,
                    city: str | None = None, visible: Any = None, limit: int = PAGE,
                    offset: int = 0) -> Select[*tuple[Any, ...]]:
    """One page of the list (the statement; ``alert_list`` runs it)."""
    limit_at = running_limit().label("limit_at")
    red_first = case((CaseWork.light == "red", 0), else_=1)
    return (select(Case.number, CaseWork.state, CaseWork.light, CaseWork.city,
                   CaseWork.district, CaseWork.appeal_type, CaseWork.matter,
                   CaseWork.lead_department, Department.name.label("lead_department_name"),
                   CaseWork.round, CaseWork.supervised, CaseWork.dispatched_at,
                   CaseWork.sign_due_at, CaseWork.due_at, limit_at)
            .join_from(CaseWork, Case, Case.id == CaseWork.case_id)
            .outerjoin(Department, Department.id == CaseWork.lead_department)
            .where(*_where(lights, department, city, visible))
            .order_by(red_first, running_limit(), CaseWork.case_id)
            .limit(max(1, min(limit, 500))).offset(max(0, offset)))


def alert_count_statement(*, lights: Sequence[str] = ALERT_LIGHTS,
                          department: str | None = None, city: str | None = None,
                          visible: Any = None) -> Select[*tuple[Any, ...]]:
    return select(func.count()).select_from(CaseWork).where(
        *_where(lights, department, city, visible))


async def alert_list(session: AsyncSession, *, lights: Sequence[str] = ALERT_LIGHTS,
                     department: str | None = None, city: str | None = None,
                     visible: Any = None, limit: int = PAGE, offset: int = 0,
                     count: bool = True) -> AlertPage:
    """Open cases at a department by light (red first, then the most overdue), filtered by
    the 主办 department and the case's city, within ``visible``; ``limit`` rows from
    ``offset``, and how many there are in all (``count``)."""
    rows = (await session.execute(alert_statement(
        lights=lights, department=department, city=city, visible=visible, limit=limit,
        offset=offset))).all()
    total = None
    if count:
        total = int((await session.execute(alert_count_statement(
            lights=lights, department=department, city=city, visible=visible))).scalar_one())
    return AlertPage([AlertRow(
        number=r.number, state=r.state, light=r.light, city=r.city, district=r.district,
        appeal_type=r.appeal_type, matter=r.matter, lead_department=r.lead_department,
        lead_department_name=r.lead_department_name or "", round=r.round,
        supervised=bool(r.supervised), dispatched_at=r.dispatched_at,
        sign_due_at=r.sign_due_at, due_at=r.due_at, limit_at=r.limit_at) for r in rows],
        total)
