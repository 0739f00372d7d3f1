"""The case loop's figures per department, per city and per period (docs/case-loop-reports.md).

A period is a local day, an ISO week (Monday to Sunday) or a calendar month in the service's
time zone; its bounds are computed here (``Period``) and handed to the database as UTC
instants, so the same SQL answers on SQLite and PostgreSQL and a day is the centre's day, not
UTC's. Every figure is a numerator and a denominator counted by an SQL aggregate (``GROUP
BY`` the department or the city: one pass over the period's cases, one over its dispatches,
each with conditional sums); rates are divided afterwards, and the totals are the sums of
the groups' numerators and denominators (every row counted belongs to exactly one group).

The figures (each anchored on one instant of its own, so a period's report counts each thing
once):

- 受理量 ``accepted``: cases whose ``case_work.accepted_at`` is in the period (merged and
  directly finished cases too).
- 按时签收率 ``sign_rate`` = ``signed_on_time`` / ``sign_due``. ``sign_due``: dispatches (主办
  and 协办, every round) whose ``sign_due_at`` is in the period and whose outcome is known
  (signed, or the limit passed by the time of the report), less those that went away unsigned
  through no lateness of the department's: cancelled by a new round, or returned (退单) before
  the limit. ``signed_on_time``: of those, signed at or before ``sign_due_at``.
- 按时办结率 ``handle_rate`` = ``handled_on_time`` / ``handle_due``. ``handle_due``: 主办
  dispatches whose ``due_at`` is in the period — ``due_at`` already holds the approved
  extensions (延期) — and whose outcome is known (replied, or the limit passed), less those
  cancelled unreplied and those returned before the limit. ``handled_on_time``: replied
  (答复; after a reply sent back by review, the last reply) at or before ``due_at``.
- 满意率 ``satisfaction_rate`` = ``satisfied`` / ``followups``. ``followups``: cases whose
  latest 回访 reached the caller (``followup_satisfaction`` set) with ``followup_at`` in the
  period; ``satisfied``: of those, answered 满意 or 基本满意. One answer per case: its latest
  (a case reopened after an unsatisfied 回访 counts with its next answer; the reopening shows
  in 重办率).
- 解决率 ``resolution_rate`` = ``resolved`` / ``followups``: the caller said it was resolved.
- 重办率 ``reopen_rate`` = ``reopened`` / ``reopen_base``. ``reopen_base``: dispatched cases
  closed (办结) or followed up (回访, reached or not) in the period; ``reopened``: of those,
  reopened (重办) at least once.
- 重复诉求率 ``repeat_rate`` = ``repeats`` / ``accepted``: accepted cases linked, when
  classified, to an earlier case of the same caller or the same place and 事项
  (``case_links`` reason ``repeat_caller`` / ``repeat_place``).
- 平均办理时长 ``avg_handle_hours``: over 主办 dispatches replied in the period, the mean of
  reply minus dispatch, in hours (calendar time).

Grouping: by department, the case figures go to the case's current 主办 department
(``case_work.lead_department``; a case never dispatched is in the row without a department)
and the dispatch figures to the dispatch's department; by city, everything goes to the case's
city (``case_work.city``, copied onto each dispatch as ``case_dispatches.city``). A city
filter keeps the cases of that city only.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    case,
    extract,
    func,
    not_,
    or_,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.loop import states as st
from cases.loop.models import CaseWork, Department, Dispatch
from cases.models import CaseLink
from common.db import utcnow

PeriodKind = Literal["day", "week", "month"]
GroupBy = Literal["department", "city"]
PERIODS: tuple[PeriodKind, ...] = ("day", "week", "month")
GROUPS: tuple[GroupBy, ...] = ("department", "city")
REPEAT_REASONS = ("repeat_caller", "repeat_place")
SATISFIED = ("satisfied", "basic")
# The first and last days a report may be asked for (the instants stay within datetime's
# range in any time zone).
EARLIEST, LATEST = date(2000, 1, 1), date(2099, 12, 31)


# -- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A local day, ISO week or calendar month: ``first``..``last`` (local dates, inclusive),
    ``start``..``end`` (UTC instants, end exclusive)."""

    kind: PeriodKind
    first: date
    last: date
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """"2026-03-02", "2026-W10", "2026-03": file names and the API."""
        if self.kind == "day":
            return self.first.isoformat()
        if self.kind == "week":
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first.year}-{self.first.month:02d}"

    def label(self, lang: str = "zh-CN") -> str:
        """The period as people write it: 2026年3月2日, 2026年第10周（3月2日—3月8日）, 2026年3月."""
        f, last = self.first, self.last
        if lang != "zh-CN":
            if self.kind == "day":
                return f.isoformat()
            if self.kind == "week":
                return f"{self.key} ({f.isoformat()} – {last.isoformat()})"
            return self.key
        if self.kind == "day":
            return f"{f.year}年{f.month}月{f.day}日"
        if self.kind == "week":
            year, week, _ = f.isocalendar()
            return f"{year}年第{week}周（{f.month}月{f.day}日—{last.month}月{last.day}日）"
        return f"{f.year}年{f.month}月"

    def buckets(self, tz: ZoneInfo) -> list[tuple[str, datetime]]:
        """The period's parts for a trend: hours of a day, days of a week or month (label,
        UTC start), in order."""
        if self.kind == "day":
            return [(f"{h:02d}", _utc(self.first, tz, h)) for h in range(24)]
        days = (self.last - self.first).days + 1
        return [((self.first + timedelta(days=i)).isoformat(),
                 _utc(self.first + timedelta(days=i), tz)) for i in range(days)]


def _utc(day: date, tz: ZoneInfo, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), tz).astimezone(UTC)


def period_of(kind: PeriodKind, day: date, tz: ZoneInfo) -> Period:
    """The period of this kind that holds ``day`` (a local date)."""
    if not EARLIEST <= day <= LATEST:
        raise ValueError(f"date: between {EARLIEST} and {LATEST}")
    if kind == "day":
        first = last = day
    elif kind == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
    elif kind == "month":
        first = day.replace(day=1)
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    else:
        raise ValueError(f"period: one of {', '.join(PERIODS)}")
    return Period(kind, first, last, _utc(first, tz), _utc(last + timedelta(days=1), tz))


def previous_period(kind: PeriodKind, today: date, tz: ZoneInfo) -> Period:
    """The last whole period of this kind before ``today``'s."""
    current = period_of(kind, today, tz)
    return period_of(kind, current.first - timedelta(days=1), tz)


# -- figures ---------------------------------------------------------------------------------


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class Figures:
    """Numerators and denominators (the rates are derived from these)."""

    accepted: int = 0
    repeats: int = 0
    sign_due: int = 0
    signed_on_time: int = 0
    handle_due: int = 0
    handled_on_time: int = 0
    followups: int = 0
    satisfied: int = 0
    resolved: int = 0
    reopen_base: int = 0
    reopened: int = 0
    replied: int = 0
    handle_hours: float = 0.0  # the sum over ``replied``

    def add(self, other: Figures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def sign_rate(self) -> float | None:
        return _rate(self.signed_on_time, self.sign_due)

    @property
    def handle_rate(self) -> float | None:
        return _rate(self.handled_on_time, self.handle_due)

    @property
    def satisfaction_rate(self) -> float | None:
        return _rate(self.satisfied, self.followups)

    @property
    def resolution_rate(self) -> float | None:
        return _rate(self.resolved, self.followups)

    @property
    def reopen_rate(self) -> float | None:
        return _rate(self.reopened, self.reopen_base)

    @property
    def repeat_rate(self) -> float | None:
        return _rate(self.repeats, self.accepted)

    @property
    def avg_handle_hours(self) -> float | None:
        return self.handle_hours / self.replied if self.replied else None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in RATES:
            out[name] = getattr(self, name)
        return out


RATES = ("sign_rate", "handle_rate", "satisfaction_rate", "resolution_rate", "reopen_rate",
         "repeat_rate", "avg_handle_hours")


@dataclass
class Row:
    """One department or city (``key`` None: cases without one)."""

    key: str | None
    name: str
    figures: Figures = field(default_factory=Figures)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, **self.figures.as_dict()}


@dataclass(frozen=True)
class Point:
    label: str
    accepted: int
    closed: int


@dataclass
class Report:
    period: Period
    by: GroupBy
    city: str | None
    department: str | None
    rows: list[Row]
    total: Figures
    series: list[Point]

    def as_dict(self, lang: str = "zh-CN") -> dict[str, Any]:
        p = self.period
        return {
            "period": {"kind": p.kind, "key": p.key, "first": p.first.isoformat(),
                       "last": p.last.isoformat(), "label": p.label(lang),
                       "start": p.start.isoformat(), "end": p.end.isoformat()},
            "by": self.by, "city": self.city, "department": self.department,
            "rows": [r.as_dict() for r in self.rows], "total": self.total.as_dict(),
            "series": [{"label": s.label, "accepted": s.accepted, "closed": s.closed}
                       for s in self.series]}


# -- the SQL ---------------------------------------------------------------------------------


def _count_if(cond: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _in(col: Any, period: Period) -> ColumnElement[bool]:
    return and_(col >= period.start, col < period.end)


def _hours(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    """``later - earlier`` in hours, as each database counts it."""
    if dialect == "postgresql":
        return sql_cast(extract("epoch", later - earlier), Float) / 3600.0
    return sql_cast((func.julianday(later) - func.julianday(earlier)) * 24.0, Float)


@dataclass(frozen=True)
class Query:
    """What a report is asked for."""

    period: Period
    by: GroupBy = "department"
    city: str | None = None
    department: str | None = None


def statements(q: Query, as_of: datetime, dialect: str) -> dict[str, Select[*tuple[Any, ...]]]:
    """The report's aggregates: one pass over the cases and one over the dispatches that
    have an instant in the period, each counting its figures with conditional sums; rows of
    (group key, numerators and denominators). The benchmark explains these very statements."""
    p = q.period
    by_city = q.by == "city"
    case_key = CaseWork.city if by_city else CaseWork.lead_department
    # The dispatch carries its case's city: no join with the city's whole history.
    disp_key = Dispatch.city if by_city else Dispatch.department_id

    accepted = _in(CaseWork.accepted_at, p)
    # An uncorrelated IN: the repeat links are read once and hashed (a correlated EXISTS
    # costs an index probe per case of the period).
    repeat = and_(accepted, CaseWork.case_id.in_(
        select(CaseLink.case_id).where(CaseLink.reason.in_(REPEAT_REASONS))))
    reached = and_(_in(CaseWork.followup_at, p), CaseWork.followup_satisfaction.is_not(None))
    reopen_base = and_(CaseWork.lead_department.is_not(None),
                       or_(_in(CaseWork.closed_at, p), _in(CaseWork.followup_at, p)))
    cases = (select(case_key.label("key"),
                    _count_if(accepted).label("accepted"),
                    _count_if(repeat).label("repeats"),
                    _count_if(reached).label("followups"),
                    _count_if(and_(reached, CaseWork.followup_satisfaction.in_(SATISFIED)))
                    .label("satisfied"),
                    _count_if(and_(reached, CaseWork.followup_resolved.is_(True)))
                    .label("resolved"),
                    _count_if(reopen_base).label("reopen_base"),
                    _count_if(and_(reopen_base, CaseWork.reopen_count > 0)).label("reopened"))
             .where(or_(accepted, _in(CaseWork.followup_at, p), _in(CaseWork.closed_at, p)))
             .group_by(case_key))
    if q.city is not None:
        cases = cases.where(CaseWork.city == q.city)
    if q.department is not None:
        cases = cases.where(CaseWork.lead_department == q.department)

    # Gone unsigned (unreplied) through no lateness of the department's: cancelled by a new
    # round, or returned before the limit.
    sign_due = and_(
        _in(Dispatch.sign_due_at, p),
        or_(Dispatch.signed_at.is_not(None), Dispatch.sign_due_at <= as_of),
        not_(and_(Dispatch.signed_at.is_(None), or_(
            Dispatch.state == st.CANCELLED,
            and_(Dispatch.state == st.RETURNED_D,
                 Dispatch.returned_at <= Dispatch.sign_due_at)))))
    lead = Dispatch.role == st.LEAD
    handle_due = and_(
        lead, _in(Dispatch.due_at, p),
        or_(Dispatch.replied_at.is_not(None), Dispatch.due_at <= as_of),
        not_(and_(Dispatch.replied_at.is_(None), or_(
            Dispatch.state == st.CANCELLED,
            and_(Dispatch.state == st.RETURNED_D, Dispatch.returned_at <= Dispatch.due_at)))))
    replied = and_(lead, _in(Dispatch.replied_at, p))
    hours = _hours(dialect, Dispatch.replied_at, Dispatch.dispatched_at)
    dispatches = (select(disp_key.label("key"),
                         _count_if(sign_due).label("sign_due"),
                         _count_if(and_(sign_due, Dispatch.signed_at <= Dispatch.sign_due_at))
                         .label("signed_on_time"),
                         _count_if(handle_due).label("handle_due"),
                         _count_if(and_(handle_due, Dispatch.replied_at <= Dispatch.due_at))
                         .label("handled_on_time"),
                         _count_if(replied).label("replied"),
                         func.coalesce(func.sum(case((replied, hours), else_=None)), 0.0)
                         .label("handle_hours"))
                  .select_from(Dispatch)
                  .where(or_(_in(Dispatch.sign_due_at, p), _in(Dispatch.due_at, p),
                             _in(Dispatch.replied_at, p)))
                  .group_by(disp_key))
    if q.city is not None:
        dispatches = dispatches.where(Dispatch.city == q.city)
    if q.department is not None:
        dispatches = dispatches.where(Dispatch.department_id == q.department)
    return {"cases": cases, "dispatches": dispatches}


def series_statements(q: Query, buckets: Sequence[tuple[str, datetime]]
                      ) -> dict[str, Select[*tuple[Any, ...]]]:
    """Accepted and closed cases per part of the period (bucket number, count)."""
    def bucket(col: Any) -> ColumnElement[int]:
        # The bucket of an instant: the last part whose start it has reached (a CASE over
        # the UTC bounds: the same on both databases, and right across a DST change).
        whens = [(col >= start, i) for i, (_, start) in reversed(list(enumerate(buckets)))]
        return case(*whens, else_=-1)

    out: dict[str, Select[*tuple[Any, ...]]] = {}
    for name, col in (("accepted", CaseWork.accepted_at), ("closed", CaseWork.closed_at)):
        s = select(bucket(col).label("bucket")).where(_in(col, q.period))
        if q.city is not None:
            s = s.where(CaseWork.city == q.city)
        if q.department is not None:
            s = s.where(CaseWork.lead_department == q.department)
        # Grouped outside: PostgreSQL would not see the CASE of the GROUP BY (its own bound
        # parameters) as the one selected.
        inner = s.subquery()
        out[name] = select(inner.c.bucket, func.count()).group_by(inner.c.bucket)
    return out


# -- the reports ------------------------------------------------------------------------------


class LoopReports:
    """Reports over the loop's tables. ``city_names``: the configured cities (id → name), in
    the order a report by city lists them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], timezone: str,
                 city_names: Mapping[str, str] | None = None, *,
                 clock: Callable[[], datetime] = utcnow):
        self.sessions = sessions
        self.tz = ZoneInfo(timezone)
        self.city_names = dict(city_names or {})
        self.clock = clock

    def period(self, kind: PeriodKind, day: date | None = None) -> Period:
        """The period of this kind holding ``day`` (default: today, local)."""
        return period_of(kind, day or self.clock().astimezone(self.tz).date(), self.tz)

    async def report(self, q: Query, *, as_of: datetime | None = None) -> Report:
        as_of = as_of or self.clock()
        groups: dict[str | None, Figures] = {}
        async with self.sessions() as session:
            dialect = (await session.connection()).dialect.name
            if dialect == "postgresql":
                # Short aggregates over index ranges: compiling them (PostgreSQL's JIT, on by
                # default above a cost a month of a big history reaches) costs more than it
                # saves — up to seconds on a small machine.
                await session.execute(text("SET LOCAL jit = off"))
            for stmt in statements(q, as_of, dialect).values():
                for row in (await session.execute(stmt)).mappings():
                    fig = groups.setdefault(row["key"], Figures())
                    for name, value in row.items():
                        if name != "key":
                            setattr(fig, name, getattr(fig, name) + (value or 0))
            buckets = q.period.buckets(self.tz)
            counted: dict[str, dict[int, int]] = {}
            for name, stmt in series_statements(q, buckets).items():
                counted[name] = {int(b): int(n) for b, n in (await session.execute(stmt)).all()}
            names = await self._names(session, q.by, [k for k in groups if k is not None])
        for fig in groups.values():
            fig.handle_hours = float(fig.handle_hours)
        if q.by == "city" and q.city is None:
            for c in self.city_names:
                groups.setdefault(c, Figures())
        elif q.by == "city" and q.city is not None:
            groups.setdefault(q.city, Figures())
        if q.by == "city":  # the configured cities without a case in the period too
            names = {k: self.city_names.get(k, k) for k in groups if k is not None}
        rows = [Row(k, names.get(k, k) if k is not None else "", f) for k, f in groups.items()]
        rows.sort(key=self._order(q.by))
        total = Figures()
        for r in rows:
            total.add(r.figures)
        series = [Point(label, counted["accepted"].get(i, 0), counted["closed"].get(i, 0))
                  for i, (label, _) in enumerate(buckets)]
        return Report(q.period, q.by, q.city, q.department, rows, total, series)

    def _order(self, by: GroupBy) -> Callable[[Row], tuple[int, int, str]]:
        cities = {c: i for i, c in enumerate(self.city_names)}

        def key(r: Row) -> tuple[int, int, str]:
            if r.key is None:
                return (2, 0, "")  # the row without a department or city last
            if by == "city":
                return (0 if r.key in cities else 1, cities.get(r.key, 0), r.key)
            return (0, 0, r.key)
        return key

    async def _names(self, session: AsyncSession, by: GroupBy, keys: list[str]
                     ) -> dict[str, str]:
        if by == "city":
            return {k: self.city_names.get(k, k) for k in keys}
        if not keys:
            return {}
        rows = await session.execute(select(Department.id, Department.name)
                                     .where(Department.id.in_(keys)))
        return {i: n for i, n in rows.all()}
