"""The supervisors' lists of the case loop (督办): open cases by 红黄灯, department, city and
state, most overdue first; the extension requests waiting for a decision; the replies waiting
for review (审核). Reads only; the asker's need-to-know comes in as an SQL condition on
``Case`` (agent_desk/access.py Scope), like every other read of the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from cases.loop import states as st
from cases.loop.models import CaseWork, Department, Dispatch
from cases.loop.taxonomy import Taxonomy
from cases.models import Case

LIGHTS = ("red", "yellow", "green", "none")
# How many extension requests and replies the list shows at most (they are worked off daily).
WAITING_MAX = 200


@dataclass(frozen=True)
class SupervisionFilter:
    light: str | None = None  # LIGHTS
    supervised: bool | None = None  # an open 督办单
    department: str | None = None  # holds a dispatch of the current round
    city: str | None = None
    state: str | None = None  # one of st.OPEN_STATES
    limit: int = 50
    offset: int = 0


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


async def supervision(session: AsyncSession, taxonomy: Taxonomy, f: SupervisionFilter, *,
                      visible: Any = None, decrypt: Callable[[str | None], str]
                      ) -> dict[str, Any]:
    seen = true() if visible is None else visible
    current = and_(Dispatch.case_id == CaseWork.case_id, Dispatch.round == CaseWork.round,
                   Dispatch.state != st.CANCELLED)
    conds = [seen, CaseWork.state.in_(st.OPEN_STATES)]
    if f.light:
        conds.append(CaseWork.light == f.light)
    if f.supervised is not None:
        conds.append(CaseWork.supervised.is_(f.supervised))
    if f.department:
        conds.append(exists().where(current, Dispatch.department_id == f.department))
    if f.city:
        conds.append(Case.city == f.city)
    if f.state:
        conds.append(CaseWork.state == f.state)
    base = select(Case, CaseWork).join(CaseWork, CaseWork.case_id == Case.id).where(*conds)
    total = (await session.execute(select(func.count()).select_from(base.subquery()))
             ).scalar_one()
    # Most overdue first: the cases whose department's clock runs, by the limit that runs out
    # first (signing for it while it waits to be signed, else handling it); then the others
    # (not dispatched yet, returned, replied, waiting for 回访), oldest first.
    running = CaseWork.state.in_(st.AT_DEPARTMENT)
    limit = case((CaseWork.state == st.DISPATCHED,
                  func.coalesce(CaseWork.sign_due_at, CaseWork.due_at)), else_=CaseWork.due_at)
    rows = (await session.execute(base.order_by(
        ~running, case((running, limit)).is_(None), case((running, limit)),
        CaseWork.accepted_at, Case.id).limit(f.limit).offset(f.offset))).all()

    extensions = (await session.execute(
        select(Case.number, Case.city, Dispatch, CaseWork.appeal_type, CaseWork.matter)
        .join(CaseWork, CaseWork.case_id == Case.id)
        .join(Dispatch, and_(Dispatch.case_id == Case.id, Dispatch.round == CaseWork.round))
        .where(seen, Dispatch.extension_state == "requested",
               CaseWork.state.in_(st.OPEN_STATES))
        .order_by(Dispatch.updated_at, Dispatch.id).limit(WAITING_MAX))).all()
    replies = (await session.execute(
        select(Case.number, Case.city, Dispatch, CaseWork.appeal_type, CaseWork.matter)
        .join(CaseWork, CaseWork.case_id == Case.id)
        .join(Dispatch, and_(Dispatch.case_id == Case.id, Dispatch.round == CaseWork.round,
                             Dispatch.role == st.LEAD, Dispatch.state == st.REPLIED_D))
        .where(seen, CaseWork.state == st.REPLIED)
        .order_by(Dispatch.replied_at, Dispatch.id).limit(WAITING_MAX))).all()

    wanted = {w.lead_department for _, w in rows if w.lead_department}
    wanted |= {d.department_id for *_, d, _a, _m in (*extensions, *replies)}
    names = {d.id: d.name for d in (await session.execute(
        select(Department).where(Department.id.in_(wanted)))).scalars()} if wanted else {}

    def classified(appeal_type: str | None, matter: str | None) -> dict[str, Any]:
        return {"appeal_type": appeal_type,
                "appeal_type_name": taxonomy.appeal_types.get(appeal_type or "", ""),
                "matter": matter, "matter_name": taxonomy.path_names(matter)}

    return {
        "total": int(total),
        "cases": [{
            "number": c.number, "city": c.city, "district": w.district, "state": w.state,
            "channel": w.channel, **classified(w.appeal_type, w.matter),
            "lead_department": w.lead_department,
            "lead_department_name": names.get(w.lead_department or "", ""),
            "light": w.light, "supervised": w.supervised, "round": w.round,
            "reopen_count": w.reopen_count, "return_count": w.return_count,
            "accepted_at": _iso(w.accepted_at), "dispatched_at": _iso(w.dispatched_at),
            "sign_due_at": _iso(w.sign_due_at), "due_at": _iso(w.due_at)}
            for c, w in rows],
        "extensions": [{
            "number": number, "city": city, **classified(appeal, matter),
            "department": d.department_id, "department_name": names.get(d.department_id, ""),
            "role": d.role, "days": d.extension_days, "reason": decrypt(d.extension_reason_enc),
            "due_at": _iso(d.due_at), "asked_at": _iso(d.updated_at)}
            for number, city, d, appeal, matter in extensions],
        "replies": [{
            "number": number, "city": city, **classified(appeal, matter),
            "department": d.department_id, "department_name": names.get(d.department_id, ""),
            "reply": decrypt(d.reply_enc), "contacted_caller": d.contacted_caller,
            "replied_at": _iso(d.replied_at), "replied_by": d.replied_by or ""}
            for number, city, d, appeal, matter in replies],
    }
