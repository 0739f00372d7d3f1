"""The case loop's store: applies ``decide()``'s decisions to ``case_work`` and
``case_dispatches`` in one transaction, with one timeline fact per change.

Every change writes a fact whose key is ``loop:<version>`` (the case's work version after the
change): two people changing the same case at once collide on that key, and the second gets a
``conflict`` instead of overwriting the first. A caller that retries may pass an idempotency
key: the fact is then ``loop:idem:<key>`` and a retry answers the case as it is, changing
nothing.

Callers pass their need-to-know as an SQL condition on ``Case`` (agent_desk/access.py Scope):
a case outside it does not exist for them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.loop import states as st
from cases.loop.lists import SupervisionFilter, supervision
from cases.loop.models import (
    CHANNELS,
    LEVELS,
    CaseWork,
    Department,
    DepartmentDefault,
    Dispatch,
    SupervisionOrder,
)
from cases.loop.taxonomy import Taxonomy
from cases.models import CallEvent, Case, CaseLink
from cases.store import next_case_number
from common.db import utcnow
from common.errors import DomainError
from common.privacy import PersonalData, mask_number

log = logging.getLogger(__name__)


class DeadlinePolicy(Protocol):
    """When a dispatch must be signed for and answered (cases/loop/deadlines.py counts
    working time with China's holiday calendar)."""

    def sign_due(self, at: datetime) -> datetime: ...

    def handle_due(self, appeal_type: str, at: datetime, extension_days: int = 0
                   ) -> datetime: ...

    def light(self, start: datetime, due: datetime, now: datetime) -> str: ...


@dataclass(frozen=True)
class CalendarDays:
    """The simplest policy (calendar time), for tools and tests that need no calendar."""

    sign_hours: float = 2
    yellow_share: float = 0.8
    days: dict[str, int] = field(default_factory=lambda: {
        "consultation": 1, "help": 3, "complaint": 5, "report": 5, "suggestion": 10,
        "praise": 5})

    def sign_due(self, at: datetime) -> datetime:
        return at + timedelta(hours=self.sign_hours)

    def handle_due(self, appeal_type: str, at: datetime, extension_days: int = 0) -> datetime:
        return at + timedelta(days=self.days.get(appeal_type, 5) + extension_days)

    def light(self, start: datetime, due: datetime, now: datetime) -> str:
        if now > due:
            return "red"
        return "yellow" if now - start >= (due - start) * self.yellow_share else "green"


@dataclass(frozen=True)
class LoopChange:
    """A change that happened (for the outbox: webhooks to the departments concerned)."""

    case_id: int
    number: str
    action: str
    state: str
    at: datetime
    by: str
    departments: tuple[str, ...]
    round: int


# Called inside the change's transaction (a transactional outbox: the notification is written
# if and only if the change is).
Outbox = Callable[[AsyncSession, LoopChange], Awaitable[None]]
# A caller's own record of the change, in the same transaction (the console's audit entry).
Witness = Callable[[AsyncSession, LoopChange], None]
# Called inside a new case's transaction with the case (flushed: it has its id and number).
Within = Callable[[AsyncSession, Case], Awaitable[None]]


@dataclass(frozen=True)
class Details:
    """What a command carries beyond ``decide``'s needs."""

    appeal_type: str | None = None
    matter: str | None = None
    district: str | None = None
    address: str | None = None  # personal: only its keyed hash is kept here
    contacted: bool | None = None  # reply: the department talked to the caller
    merge_into: str | None = None  # merge: the case number kept


@dataclass(frozen=True)
class DepartmentEntry:
    id: str
    name: str
    level: str
    city: str | None = None
    parent_id: str | None = None
    unit: str = ""
    webhook_url: str | None = None
    active: bool = True

    def problems(self) -> list[str]:
        out = []
        if not self.id or len(self.id) > 32 or not self.id.replace("-", "").replace(
                "_", "").isalnum():
            out.append(f"id: {self.id!r} is not an id (letters, digits, - and _)")
        if not self.name.strip():
            out.append(f"{self.id}.name: a name is needed")
        if self.level not in LEVELS:
            out.append(f"{self.id}.level: one of {', '.join(LEVELS)}")
        return out


def normalize_address(text: str) -> str:
    """Compare addresses the way a person would: no spaces or punctuation."""
    return "".join(ch for ch in text if ch.isalnum()).lower()


class CaseLoop:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 taxonomy: Taxonomy, deadlines: DeadlinePolicy | None = None, *,
                 timezone: str = "Asia/Shanghai", repeat_window_days: int = 90,
                 clock: Callable[[], datetime] = utcnow, outbox: Outbox | None = None,
                 districts: Mapping[str, Mapping[str, str]] | None = None):
        # ``districts``: per city, its districts' names by id (a city without: any id goes).
        self.sessions = sessions
        self.districts = {c: dict(d) for c, d in (districts or {}).items() if d}
        self.personal = personal
        self.taxonomy = taxonomy
        self.deadlines: DeadlinePolicy = deadlines or CalendarDays()
        self.tz = ZoneInfo(timezone)
        self.repeat_window = timedelta(days=repeat_window_days)
        self.clock = clock
        self.outbox = outbox

    def district_name(self, city: str | None, district: str | None) -> str:
        """A district's name as people read it (its id where the city lists none)."""
        if not district:
            return ""
        return self.districts.get(city or "", {}).get(district, district)

    # -- the directory ----------------------------------------------------------------------

    async def upsert_departments(self, entries: Sequence[DepartmentEntry]) -> int:
        problems = [p for e in entries for p in e.problems()]
        if problems:
            raise DomainError("invalid", "; ".join(problems))
        async with self.sessions() as session, session.begin():
            for e in entries:
                row = await session.get(Department, e.id)
                values = {"name": e.name, "level": e.level, "city": e.city,
                          "parent_id": e.parent_id, "unit": e.unit,
                          "webhook_url": e.webhook_url, "active": e.active}
                if row is None:
                    session.add(Department(id=e.id, **values))
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
        return len(entries)

    async def set_default(self, matter: str, city: str | None, department_id: str) -> None:
        async with self.sessions() as session, session.begin():
            if await session.get(Department, department_id) is None:
                raise DomainError("invalid", f"department: unknown {department_id!r}")
            row = await session.get(DepartmentDefault, (matter, city or ""))
            if row is None:
                session.add(DepartmentDefault(matter=matter, city=city or "",
                                              department_id=department_id))
            else:
                row.department_id = department_id

    async def delete_default(self, matter: str, city: str | None) -> bool:
        """Remove a 事项's default in a city (no city: the province's); False if none was set.
        The suggestion then falls back to the province's default, or to none."""
        async with self.sessions() as session, session.begin():
            row = await session.get(DepartmentDefault, (matter, city or ""))
            if row is None:
                return False
            await session.delete(row)
            return True

    async def departments(self, *, city: str | None = None, active_only: bool = True
                          ) -> list[Department]:
        async with self.sessions() as session:
            q = select(Department).order_by(Department.level, Department.id)
            if active_only:
                q = q.where(Department.active.is_(True))
            if city is not None:
                q = q.where((Department.city == city) | Department.city.is_(None))
            return list((await session.execute(q)).scalars())

    async def suggested_department(self, matter: str | None, city: str | None) -> str | None:
        """The default department for a 事项 in a city (the city's own, else the province's)."""
        if not matter:
            return None
        async with self.sessions() as session:
            rows = (await session.execute(select(DepartmentDefault).where(
                DepartmentDefault.matter == matter,
                DepartmentDefault.city.in_([city or "", ""])))).scalars().all()
        best = sorted(rows, key=lambda r: r.city == "")
        return best[0].department_id if best else None

    # -- cases without a call ---------------------------------------------------------------

    async def create_case(self, *, channel: str, city: str | None, caller: str | None,
                          at: datetime | None = None, within: Within | None = None) -> str:
        """A case that arrives without a call (web form, mini-program, partner systems): a
        case record like a call's, in state 受理, its channel recorded. ``within`` writes what
        came with it (the form, the channel's reference) in the same transaction: both are
        stored or neither (a refusal there leaves no case and uses no number)."""
        if channel not in CHANNELS:
            raise DomainError("invalid", f"channel: one of {', '.join(CHANNELS)}")
        now = at or self.clock()
        async with self.sessions() as session, session.begin():
            number = await next_case_number(session, now, self.tz)
            case = Case(number=number, call_id=None, city=city, source=channel, flags=[],
                        priority=0, call_state="ended", arrived_at=now,
                        caller_enc=self.personal.encrypt(caller),
                        caller_hash=self.personal.lookup_hash(caller),
                        caller_masked=mask_number(caller) if caller else None)
            session.add(case)
            await session.flush()
            session.add(CaseWork(case_id=case.id, channel=channel, city=city, state=st.ACCEPTED,
                                 accepted_at=now, round=0, reopen_count=0, return_count=0,
                                 light="none", supervised=False, version=0))
            session.add(CallEvent(case_id=case.id, key="loop:0", kind="loop.accepted", at=now,
                                  detail={"channel": channel}, source=channel))
            if within is not None:
                await within(session, case)
        return number

    # -- changes -----------------------------------------------------------------------------

    async def act(self, number: str, actor: st.Actor, cmd: st.Command,
                  details: Details | None = None, *, visible: Any = None,
                  idempotency_key: str | None = None, witness: Witness | None = None
                  ) -> dict[str, Any]:
        """Apply one command to the case ``number`` (as ``actor``, within ``visible``); the
        case's loop afterwards (``view``). ``witness`` is called inside the change's
        transaction (not for a retry that changes nothing)."""
        details = details or Details()
        for attempt in range(3):
            try:
                async with self.sessions() as session, session.begin():
                    case = await self._case(session, number, visible)
                    if idempotency_key and await self._seen(session, case.id, idempotency_key):
                        break
                    change = await self._apply(session, case, actor, cmd, details,
                                               idempotency_key)
                    if witness is not None:
                        witness(session, change)
                break
            except IntegrityError:
                # Someone else changed the case between our read and our write.
                if attempt == 2:
                    raise DomainError("conflict", "the case changed meanwhile; try again"
                                      ) from None
        return await self.view(number, visible=visible)

    async def _seen(self, session: AsyncSession, case_id: int, key: str) -> bool:
        return (await session.execute(select(CallEvent.id).where(
            CallEvent.case_id == case_id, CallEvent.key == f"loop:idem:{key[:100]}"))
        ).first() is not None

    async def _case(self, session: AsyncSession, number: str, visible: Any) -> Case:
        case = (await session.execute(select(Case).where(
            Case.number == number, true() if visible is None else visible))
        ).scalar_one_or_none()
        if case is None:
            raise DomainError("not_found", f"no case {number}")
        return case

    async def _work(self, session: AsyncSession, case: Case) -> CaseWork:
        work = await session.get(CaseWork, case.id)
        if work is None:
            work = CaseWork(case_id=case.id, channel="phone", city=case.city,
                            state=st.CLOSED if case.closed_at else st.ACCEPTED,
                            accepted_at=case.arrived_at or case.created_at, round=0,
                            reopen_count=0, return_count=0, light="none", supervised=False,
                            version=0)
            session.add(work)
            await session.flush()
        elif case.closed_at is not None and work.state in st.OPEN_STATES:
            # Closed outside the loop (the case form's 办结, agent_desk/cases): the loop
            # follows, so the case is not closed a second time.
            work.state, work.closed_at, work.closed_how = st.CLOSED, case.closed_at, "direct"
        return work

    async def _dispatches(self, session: AsyncSession, work: CaseWork) -> list[Dispatch]:
        if work.round == 0:
            return []
        return list((await session.execute(select(Dispatch).where(
            Dispatch.case_id == work.case_id, Dispatch.round == work.round)
            .order_by(Dispatch.id))).scalars())

    async def _apply(self, session: AsyncSession, case: Case, actor: st.Actor,
                     cmd: st.Command, details: Details, idem: str | None) -> LoopChange:
        work = await self._work(session, case)
        current = await self._dispatches(session, work)
        view = st.WorkView(
            state=work.state, classified=bool(work.appeal_type and work.matter),
            round=work.round,
            dispatches=tuple(st.DispatchView(d.department_id, d.role, d.state,
                                             d.extension_state) for d in current))
        if cmd.action == "classify":
            problems = self.taxonomy.check(details.appeal_type, details.matter)
            districts = self.districts.get(case.city or "")
            if details.district and districts is not None and details.district not in districts:
                problems.append(f"district: {details.district!r} is not a district of "
                                f"{case.city} ({', '.join(sorted(districts))})")
            if problems:
                raise DomainError("invalid", "; ".join(problems))
        decision = st.decide(view, actor, cmd)
        now = self.clock()
        enc = self.personal.encrypt
        detail: dict[str, Any] = {"by": actor.user, "role": actor.role, "from": work.state,
                                  "to": decision.state}
        if actor.department:
            detail["department"] = actor.department
        if cmd.reason.strip():
            detail["reason_enc"] = enc(cmd.reason.strip())
        by_dept = {d.department_id: d for d in current}
        touched: set[str] = set(decision.dispatch_states)

        a = cmd.action
        if a == "classify":
            work.appeal_type, work.matter = details.appeal_type, details.matter
            if details.district is not None:
                work.district = details.district or None
            if details.address:
                place = normalize_address(details.address)
                work.address_hash = self.personal.text_hash(place)
                work.address_enc = self.personal.encrypt(place)
            detail.update(appeal_type=work.appeal_type, matter=work.matter,
                          district=work.district)
            detail["repeats"] = await self._link_repeats(session, case, work, now)
        elif a == "dispatch" or decision.new_round:
            lead = cmd.lead if a == "dispatch" else work.lead_department
            assist = cmd.assist if a == "dispatch" else tuple(
                d.department_id for d in current if d.role == st.ASSIST)
            assert lead is not None
            known = set((await session.execute(select(Department.id).where(
                Department.id.in_([lead, *assist]), Department.active.is_(True)))).scalars())
            missing = [d for d in (lead, *assist) if d not in known]
            if missing:
                raise DomainError("invalid", f"departments: unknown {', '.join(missing)}")
            for d in current:
                if d.state in (st.PENDING, st.SIGNED):
                    d.state = st.CANCELLED
            work.round += 1
            sign_due = self.deadlines.sign_due(now)
            due = self.deadlines.handle_due(work.appeal_type or "", now)
            for dept, role in ((lead, st.LEAD), *((x, st.ASSIST) for x in assist)):
                session.add(Dispatch(case_id=case.id, department_id=dept, round=work.round,
                                     city=work.city, role=role, state=st.PENDING,
                                     dispatched_at=now,
                                     dispatched_by=actor.user, sign_due_at=sign_due,
                                     due_at=due, extension_days=0, extension_granted_days=0))
                touched.add(dept)
            work.lead_department = lead
            work.dispatched_at, work.sign_due_at, work.due_at = now, sign_due, due
            work.light, work.supervised = "green", False
            work.replied_at = None
            if decision.reopened:
                work.reopen_count += 1
            detail.update(lead=lead, assist=list(assist), round=work.round,
                          sign_due_at=sign_due.isoformat(), due_at=due.isoformat())
        if a == "follow_up":
            work.followup_at = now
            work.followup_resolved = cmd.resolved if cmd.reached else None
            work.followup_satisfaction = cmd.satisfaction if cmd.reached else None
            detail.update(reached=cmd.reached, resolved=cmd.resolved,
                          satisfaction=cmd.satisfaction)
        if a == "merge":
            target = details.merge_into
            other = (await session.execute(select(Case).where(Case.number == target))
                     ).scalar_one_or_none() if target else None
            if other is None or other.id == case.id:
                raise DomainError("invalid", "merge_into: another existing case is needed")
            other_work = await session.get(CaseWork, other.id)
            if other_work is not None and other_work.state in (st.MERGED,):
                raise DomainError("conflict", f"case {target} is itself merged")
            work.merged_into = other.id
            await self._add_link(session, case.id, other.id, "merged")
            detail["merged_into"] = target
        if a == "decide_extension":
            for d in current:
                if d.extension_state == "requested":
                    d.extension_state = "approved" if cmd.accept else "refused"
                    if cmd.accept:
                        d.extension_granted_days += d.extension_days
                        d.due_at = self.deadlines.handle_due(
                            work.appeal_type or "", d.dispatched_at, d.extension_granted_days)
                        if d.role == st.LEAD:
                            # The light of the new limit at once, not at the next sweep
                            # (which also weighs the assisting departments' dispatches).
                            work.due_at = d.due_at
                            work.light = self.deadlines.light(d.dispatched_at, d.due_at,
                                                              self.clock())
                    touched.add(d.department_id)
                    detail.update(accept=cmd.accept, days=d.extension_days,
                                  department_asked=d.department_id)
        if actor.department and a in ("sign", "return", "reply", "request_extension", "note"):
            d = by_dept[actor.department]
            if a == "sign":
                d.signed_at, d.signed_by = now, actor.user
            elif a == "return":
                d.returned_at, d.return_reason_enc = now, enc(cmd.reason.strip())
                if d.role == st.LEAD:
                    work.return_count += 1
            elif a == "reply":
                d.replied_at, d.replied_by = now, actor.user
                d.reply_enc, d.contacted_caller = enc(cmd.reason.strip()), details.contacted
                detail["contacted"] = details.contacted
                if d.role == st.LEAD:
                    work.replied_at = now
            elif a == "request_extension":
                d.extension_state, d.extension_days = "requested", cmd.days
                d.extension_reason_enc = enc(cmd.reason.strip())
                detail["days"] = cmd.days
            touched.add(d.department_id)
        if a == "review" and cmd.accept is False:
            lead_d = next(d for d in current if d.role == st.LEAD)
            lead_d.replied_at = None
        for dept, state in decision.dispatch_states.items():
            if dept in by_dept:
                by_dept[dept].state = state
        if decision.state in (st.CLOSED, st.MERGED, st.REPLIED, st.FOLLOW_UP, st.RETURNED):
            # The department's clock stops: the supervision orders of this round close.
            await self._close_orders(session, case.id, now)
            work.supervised = False
            work.light = "none" if decision.state in (st.CLOSED, st.MERGED) else work.light
        if decision.state == st.CLOSED:
            work.closed_at, work.closed_how = now, decision.closed_how
            case.closed_at = now  # the call record's 办结 too (repeat callers, the console)
        elif work.state == st.CLOSED:
            work.closed_at, work.closed_how = None, None
            case.closed_at = None
        work.state = decision.state
        work.version += 1
        key = f"loop:idem:{idem[:100]}" if idem else f"loop:{work.version}"
        session.add(CallEvent(case_id=case.id, key=key, kind=decision.fact, at=now,
                              detail=detail, source="console"))
        await session.flush()
        change = LoopChange(case.id, case.number, a, work.state, now, actor.user,
                            tuple(sorted(touched)), work.round)
        if self.outbox is not None:
            await self.outbox(session, change)
        return change

    async def _close_orders(self, session: AsyncSession, case_id: int, now: datetime) -> None:
        for order in (await session.execute(select(SupervisionOrder).where(
                SupervisionOrder.case_id == case_id, SupervisionOrder.closed_at.is_(None))
        )).scalars():
            order.closed_at = now

    async def _add_link(self, session: AsyncSession, case_id: int, other_id: int,
                        reason: str) -> bool:
        exists = (await session.execute(select(CaseLink.id).where(
            CaseLink.case_id == case_id, CaseLink.linked_case_id == other_id))).first()
        if exists is None:
            session.add(CaseLink(case_id=case_id, linked_case_id=other_id, reason=reason))
            return True
        return False

    async def _link_repeats(self, session: AsyncSession, case: Case, work: CaseWork,
                            now: datetime) -> list[str]:
        """重复诉求: earlier cases (closed ones too) within the window by the same caller, or
        about the same 事项 at the same place. Linked both ways by one row."""
        since = now - self.repeat_window
        conds = []
        if case.caller_hash:
            conds.append(Case.caller_hash == case.caller_hash)
        if work.address_hash and work.matter:
            conds.append(Case.id.in_(select(CaseWork.case_id).where(
                CaseWork.matter == work.matter, CaseWork.address_hash == work.address_hash)))
        if not conds:
            return []
        rows = (await session.execute(select(Case.id, Case.number, Case.caller_hash).where(
            or_(*conds), Case.id != case.id, Case.created_at >= since,
            Case.created_at <= case.created_at).order_by(Case.created_at.desc()).limit(20)
        )).all()
        found = []
        for other_id, other_number, other_caller in rows:
            reason = "repeat_caller" if (case.caller_hash and other_caller == case.caller_hash
                                         ) else "repeat_place"
            await self._add_link(session, case.id, other_id, reason)
            found.append(other_number)
        return found

    # -- reading -----------------------------------------------------------------------------

    async def view(self, number: str, *, visible: Any = None, clear_text: bool = True
                   ) -> dict[str, Any]:
        """The case's loop: state, classification, dispatches (all rounds), due dates and
        the loop's facts. ``clear_text`` False leaves replies and reasons out."""
        async with self.sessions() as session:
            case = await self._case(session, number, visible)
            work = await session.get(CaseWork, case.id)
            disp = list((await session.execute(select(Dispatch).where(
                Dispatch.case_id == case.id).order_by(Dispatch.round, Dispatch.id))).scalars())
            names = {d.id: d.name for d in (await session.execute(select(Department).where(
                Department.id.in_({x.department_id for x in disp} | (
                    {work.lead_department} if work and work.lead_department else set()))))
            ).scalars()}
            facts = list((await session.execute(select(CallEvent).where(
                CallEvent.case_id == case.id, CallEvent.kind.like("loop.%"))
                .order_by(CallEvent.at, CallEvent.id))).scalars())
            orders = list((await session.execute(select(SupervisionOrder).where(
                SupervisionOrder.case_id == case.id).order_by(SupervisionOrder.id))).scalars())
        dec = self.personal.decrypt_text if clear_text else (lambda _t: "")

        def iso(v: datetime | None) -> str | None:
            return v.astimezone(UTC).isoformat() if v else None

        if work is None:
            work = CaseWork(state=st.CLOSED if case.closed_at else st.ACCEPTED,
                            channel="phone", round=0, reopen_count=0, return_count=0,
                            light="none", supervised=False, version=0)
        return {
            "number": case.number,
            "state": st.CLOSED if case.closed_at and work.state in st.OPEN_STATES
            else work.state, "channel": work.channel,
            "city": case.city, "district": work.district,
            "district_name": self.district_name(case.city, work.district),
            "districts": [{"id": k, "name": v}
                          for k, v in self.districts.get(case.city or "", {}).items()],
            "appeal_type": work.appeal_type,
            "appeal_type_name": self.taxonomy.appeal_types.get(work.appeal_type or "", ""),
            "matter": work.matter, "matter_name": self.taxonomy.path_names(work.matter),
            "round": work.round, "lead_department": work.lead_department,
            "lead_department_name": names.get(work.lead_department or "", ""),
            "light": work.light, "supervised": work.supervised,
            "sign_due_at": iso(work.sign_due_at), "due_at": iso(work.due_at),
            "reopen_count": work.reopen_count, "return_count": work.return_count,
            "followup": {"resolved": work.followup_resolved,
                         "satisfaction": work.followup_satisfaction,
                         "at": iso(work.followup_at)},
            "closed_at": iso(work.closed_at), "closed_how": work.closed_how,
            "version": work.version,
            "dispatches": [{
                "department": d.department_id, "department_name": names.get(d.department_id, ""),
                "round": d.round, "role": d.role, "state": d.state,
                "dispatched_at": iso(d.dispatched_at), "sign_due_at": iso(d.sign_due_at),
                "signed_at": iso(d.signed_at), "due_at": iso(d.due_at),
                "returned_at": iso(d.returned_at), "return_reason": dec(d.return_reason_enc),
                "replied_at": iso(d.replied_at), "reply": dec(d.reply_enc),
                "contacted_caller": d.contacted_caller,
                "extension": {"state": d.extension_state, "days": d.extension_days,
                              "granted_days": d.extension_granted_days,
                              "reason": dec(d.extension_reason_enc)},
            } for d in disp],
            "supervision": [{"kind": o.kind, "department": o.department_id,
                             "opened_at": iso(o.opened_at), "closed_at": iso(o.closed_at)}
                            for o in orders],
            "timeline": [self._fact(f, dec) for f in facts],
        }

    async def supervision(self, f: SupervisionFilter, *, visible: Any = None,
                          clear_text: bool = True) -> dict[str, Any]:
        """督办: open cases by 红黄灯, department, city and state (most overdue first), the
        extension requests and the replies waiting for a supervisor (cases/loop/lists.py)."""
        dec = self.personal.decrypt_text if clear_text else (lambda _t: "")
        async with self.sessions() as session:
            return await supervision(session, self.taxonomy, f, visible=visible, decrypt=dec)

    @staticmethod
    def _fact(f: CallEvent, dec: Callable[[str | None], str]) -> dict[str, Any]:
        d = dict(f.detail or {})
        reason = d.pop("reason_enc", None)
        if reason:
            d["reason"] = dec(reason)
        return {"kind": f.kind, "at": f.at.astimezone(UTC).isoformat(), **d}
