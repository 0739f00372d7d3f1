"""Time limits of the case loop (时限) and the traffic light (红黄灯), counted in working time.

Pure: every answer comes from the arguments (a start, the limits, the calendar, the clock's
reading), so the sweep and the console agree and unit tests cover them on published calendars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from cases.loop.calendar import WorkCalendar
from common.errors import DomainError

Light = Literal["green", "yellow", "red"]

# Working days to handle a case, by appeal type (诉求类型): 咨询 1, 求助 3, 投诉 5, 举报 5,
# 建议 10, 表扬 5 — the usual 12345 rules; a city configures its own.
DEFAULT_HANDLING_DAYS: Mapping[str, int] = MappingProxyType({
    "consultation": 1, "help": 3, "complaint": 5, "report": 5, "suggestion": 10, "praise": 5,
})


@dataclass(frozen=True)
class TimeLimits:
    # Working hours a department has to sign for (签收) or return (退单) a dispatch.
    sign_hours: float = 2
    handling_days: Mapping[str, int] = field(default_factory=lambda: DEFAULT_HANDLING_DAYS)
    # Share of the working time used from which a deadline shows yellow (预警).
    yellow_share: float = 0.8

    def __post_init__(self) -> None:
        if self.sign_hours <= 0:
            raise ValueError("sign_hours must be positive")
        if not 0 < self.yellow_share <= 1:
            raise ValueError("yellow_share must be in (0, 1]")
        bad = sorted(k for k, v in self.handling_days.items() if v < 1)
        if bad:
            raise ValueError(f"handling days must be at least 1: {', '.join(bad)}")
        # Frozen means frozen: a caller's dict changed later must not move deadlines.
        object.__setattr__(self, "handling_days", MappingProxyType(dict(self.handling_days)))

    def days_for(self, appeal_type: str) -> int:
        days = self.handling_days.get(appeal_type)
        if days is None:
            raise DomainError("invalid", f"no time limit for appeal type {appeal_type!r}")
        return days


def sign_due(dispatched_at: datetime, limits: TimeLimits, calendar: WorkCalendar) -> datetime:
    """When a dispatch must be signed for or returned: ``sign_hours`` working hours on."""
    return calendar.add_working_hours(dispatched_at, limits.sign_hours)


def handle_due(start: datetime, appeal_type: str, limits: TimeLimits, calendar: WorkCalendar,
               *, extension_days: int = 0) -> datetime:
    """When handling is due: the appeal type's working days from ``start`` (the dispatch or its
    signing, as the loop decides), plus approved extension days (延期)."""
    if extension_days < 0:
        raise ValueError("extension_days must not be negative")
    return calendar.add_working_days(start, limits.days_for(appeal_type) + extension_days)


def light(start: datetime, due: datetime, now: datetime, yellow_share: float,
          calendar: WorkCalendar) -> Light:
    """Red once ``now`` is past ``due``; yellow once the used share of the working time from
    ``start`` to ``due`` reaches ``yellow_share``; green before."""
    if now > due:
        return "red"
    allowed = calendar.working_time_between(start, due)
    if allowed <= timedelta():
        return "yellow"  # nothing left to use: a deadline at its start warns at once
    used = calendar.working_time_between(start, now)
    return "yellow" if used >= allowed * yellow_share else "green"


@dataclass(frozen=True)
class WorkingTimePolicy:
    """The loop store's deadline policy (``DeadlinePolicy`` in cases/loop/store.py) counted in
    working time: the limits, on the calendar."""

    limits: TimeLimits
    calendar: WorkCalendar

    def sign_due(self, at: datetime) -> datetime:
        return sign_due(at, self.limits, self.calendar)

    def handle_due(self, appeal_type: str, at: datetime, extension_days: int = 0) -> datetime:
        return handle_due(at, appeal_type, self.limits, self.calendar,
                          extension_days=extension_days)

    def light(self, start: datetime, due: datetime, now: datetime) -> Light:
        return light(start, due, now, self.limits.yellow_share, self.calendar)
