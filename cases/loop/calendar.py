"""Working time as China's 12345 time limits count it: working days and office hours.

Working days are the State Council's calendar (weekends rest, public holidays rest, and the
adjusted working weekends 调休 work), as the ``chinese_calendar`` package publishes it, with the
operator's overrides on top: extra holidays and extra workdays (a local holiday, a change made
after the package was released) and whole years the package does not know yet
(``declared_years``: weekends rest there, plus the overrides). A year nobody describes counts
Monday to Friday (``estimate_unknown_years``, the default: a hotline cannot stop dispatching
on 24 December because next year's notice is not in the package yet); the years so estimated
are in ``estimated_years`` and the service warns about them. With the estimate off, such a
year is an error (``CalendarNotCovered``).

Times given are aware datetimes (the database returns aware UTC, common/db.py); the calendar
reads them in the service's time zone (Asia/Shanghai unless configured) and answers aware
datetimes in that zone, which compare and store correctly against UTC ones. Office hours are
wall-clock times of that zone.

Working time is a position on a line that only moves during office hours of working days. Where
several instants share a position (17:30 Friday and 08:30 Monday, or 12:00 and 13:30 of one day)
the earliest is answered: a deadline is "by Monday 17:30", not "by Tuesday 08:30".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from common.errors import DomainError

DEFAULT_OFFICE_HOURS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(13, 30), time(17, 30)),
)
DEFAULT_TIMEZONE = "Asia/Shanghai"

_DAY = timedelta(days=1)
# Enough to cross any real run of holidays; a calendar with no working day in ten years is a
# configuration mistake, reported instead of looping.
_MAX_SCAN_DAYS = 3660


class CalendarNotCovered(DomainError):
    """A date whose year neither the package nor the configuration describes."""

    def __init__(self, year: int) -> None:
        super().__init__(
            "calendar_not_covered",
            f"no holiday schedule for {year}: chinesecalendar "
            f"{chinese_calendar.__version__} does not cover it; upgrade chinesecalendar, or "
            f"declare {year} in the calendar overrides with its holidays and adjusted workdays",
        )
        self.year = year


def _offset(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second,
                     microseconds=t.microsecond)


class WorkCalendar:
    """China's working days plus overrides, and office hours, in one time zone."""

    def __init__(self, *, timezone: str = DEFAULT_TIMEZONE,
                 office_hours: Sequence[tuple[time, time]] = DEFAULT_OFFICE_HOURS,
                 extra_holidays: Iterable[date] = (), extra_workdays: Iterable[date] = (),
                 declared_years: Iterable[int] = (),
                 estimate_unknown_years: bool = True) -> None:
        self.tz = ZoneInfo(timezone)
        self.estimate_unknown_years = estimate_unknown_years
        self.estimated_years: set[int] = set()
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        both = self.extra_holidays & self.extra_workdays
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"dates both extra holidays and extra workdays: {listed}")
        self.declared_years = frozenset(declared_years)
        self.periods = self._check_periods(office_hours)
        self.day_length = sum((end - start for start, end in self.periods), timedelta())
        self._known: dict[int, bool] = {}

    @staticmethod
    def _check_periods(office_hours: Sequence[tuple[time, time]]
                       ) -> tuple[tuple[timedelta, timedelta], ...]:
        if not office_hours:
            raise ValueError("office hours: at least one period is needed")
        periods = tuple((_offset(a), _offset(b)) for a, b in office_hours)
        previous_end = timedelta()
        for (start, end), (a, b) in zip(periods, office_hours, strict=True):
            if a.tzinfo is not None or b.tzinfo is not None:
                raise ValueError("office hours are wall-clock times without a time zone")
            if end <= start:
                raise ValueError(f"office hours: {a}–{b} ends before it starts")
            if start < previous_end:
                raise ValueError(f"office hours: {a}–{b} overlaps or precedes the period before")
            previous_end = end
        return periods

    # -- days -------------------------------------------------------------------------------

    def _package_knows(self, year: int) -> bool:
        known = self._known.get(year)
        if known is None:
            try:
                chinese_calendar.is_workday(date(year, 1, 1))
                known = True
            except NotImplementedError:
                known = False
            self._known[year] = known
        return known

    def covers(self, year: int) -> bool:
        """Whether the working days of ``year`` are known (the package's or declared)."""
        return year in self.declared_years or self._package_knows(year)

    def is_workday(self, day: date) -> bool:
        if isinstance(day, datetime):
            raise TypeError("is_workday takes a date; use local() for a datetime's date")
        if day in self.extra_workdays:
            return True
        if day in self.extra_holidays:
            return False
        if self._package_knows(day.year):
            return bool(chinese_calendar.is_workday(day))
        if day.year in self.declared_years:
            return day.weekday() < 5
        if self.estimate_unknown_years:
            self.estimated_years.add(day.year)
            return day.weekday() < 5
        raise CalendarNotCovered(day.year)

    def next_workday(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        for _ in range(_MAX_SCAN_DAYS):
            day += _DAY
            if self.is_workday(day):
                return day
        raise ValueError(f"no working day within {_MAX_SCAN_DAYS} days after {day}")

    def previous_workday(self, day: date) -> date:
        """The last working day strictly before ``day``."""
        for _ in range(_MAX_SCAN_DAYS):
            day -= _DAY
            if self.is_workday(day):
                return day
        raise ValueError(f"no working day within {_MAX_SCAN_DAYS} days before {day}")

    # -- instants ---------------------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        """``moment`` in the service's time zone; a naive datetime is refused (its zone is a
        guess: UTC from the database, local from a person)."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("naive datetime given to the work calendar")
        return moment.astimezone(self.tz)

    def _at(self, day: date, offset: timedelta) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz) + offset

    @staticmethod
    def _time_of_day(moment: datetime) -> timedelta:
        return moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)

    def earliest(self, moment: datetime) -> datetime:
        """The earliest instant at the same working-time position as ``moment``: itself inside
        office hours, else the end of the office period before it (Saturday 10:00 and Monday
        08:30 are both Friday 17:30 in working time)."""
        local = self.local(moment)
        day, now = local.date(), self._time_of_day(local)
        if self.is_workday(day):
            if any(start < now <= end for start, end in self.periods):
                return local
            ended = [end for _start, end in self.periods if end <= now]
            if ended:
                return self._at(day, ended[-1])
        return self._at(self.previous_workday(day), self.periods[-1][1])

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The earliest instant ``amount`` of office time after ``start``."""
        if amount < timedelta():
            raise ValueError("working time to add must not be negative")
        local = self.local(start)
        if not amount:
            return local
        left = amount
        day, now = local.date(), self._time_of_day(local)
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_workday(day):
                for period_start, period_end in self.periods:
                    if period_end <= now:
                        continue
                    begin = max(period_start, now)
                    available = period_end - begin
                    if left <= available:
                        return self._at(day, begin + left)
                    left -= available
            day, now = day + _DAY, timedelta()
        raise ValueError(f"no office time within {_MAX_SCAN_DAYS} days after {start}")

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """Two working hours from 17:00 with office hours ending 17:30 are 10:00 of the next
        working day (with a morning starting 08:30)."""
        return self.add_working_time(start, timedelta(hours=hours))

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """``days`` working days after ``start``: the same time of day that many working days
        later (dispatched Friday 16:00, one working day is Monday 16:00; a holiday between is
        skipped). Outside office hours the count starts from the end of the last office period
        (dispatched Saturday, one working day is Monday at closing time)."""
        if days < 0:
            raise ValueError("working days to add must not be negative")
        if days == 0:
            return self.local(start)
        begin = self.earliest(start)
        day = begin.date()
        for _ in range(days):
            day = self.next_workday(day)
        return self._at(day, self._time_of_day(begin))

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Office time from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
        a, b = self.local(a), self.local(b)
        if b < a:
            return -self.working_time_between(b, a)
        total = timedelta()
        day, last = a.date(), b.date()
        while day <= last:
            if self.is_workday(day):
                low = self._time_of_day(a) if day == a.date() else timedelta()
                high = self._time_of_day(b) if day == last else _DAY
                for start, end in self.periods:
                    overlap = min(end, high) - max(start, low)
                    if overlap > timedelta():
                        total += overlap
            day += _DAY
        return total

    def working_seconds_between(self, a: datetime, b: datetime) -> float:
        return self.working_time_between(a, b).total_seconds()
