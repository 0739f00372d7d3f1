"""Report periods in the service's time zone and the scheduled files' timetable (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from agent_desk.reports.plugin import due
from cases.loop.reports import period_of, previous_period
from common.config import ReportsSection

SH = ZoneInfo("Asia/Shanghai")


def test_a_day_week_and_month_in_shanghai_are_local_days():
    day = period_of("day", date(2026, 3, 2), SH)
    assert (day.start, day.end) == (datetime(2026, 3, 1, 16, tzinfo=UTC),
                                    datetime(2026, 3, 2, 16, tzinfo=UTC))
    assert day.key == "2026-03-02" and day.label() == "2026年3月2日"
    week = period_of("week", date(2026, 3, 8), SH)  # a Sunday: the week from Monday the 2nd
    assert (week.first, week.last, week.key) == (date(2026, 3, 2), date(2026, 3, 8), "2026-W10")
    assert week.label() == "2026年第10周（3月2日—3月8日）"
    assert week.label("en") == "2026-W10 (2026-03-02 – 2026-03-08)"
    feb = period_of("month", date(2028, 2, 10), SH)
    assert (feb.first, feb.last, feb.key, feb.label()) == (
        date(2028, 2, 1), date(2028, 2, 29), "2028-02", "2028年2月")
    # ISO weeks: 2026-12-31 is in 2026-W53, 2027-01-01 too.
    assert period_of("week", date(2027, 1, 1), SH).key == "2026-W53"
    assert previous_period("month", date(2026, 1, 15), SH).key == "2025-12"
    assert previous_period("week", date(2026, 3, 2), SH).key == "2026-W09"


def test_buckets_follow_the_local_clock_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")
    day = period_of("day", date(2026, 3, 29), berlin)  # clocks go forward: 23 hours
    assert (day.end - day.start).total_seconds() == 23 * 3600
    hours = day.buckets(berlin)
    assert hours[0] == ("00", datetime(2026, 3, 28, 23, tzinfo=UTC))
    assert hours[3][1] == datetime(2026, 3, 29, 1, tzinfo=UTC)  # 03:00 CEST (02:00 skipped)
    days = period_of("week", date(2026, 3, 25), berlin).buckets(berlin)
    assert [label for label, _ in days][-1] == "2026-03-29"
    assert days[-1][1] == datetime(2026, 3, 28, 23, tzinfo=UTC)


def test_dates_outside_the_supported_range_are_refused():
    for bad in (date(1999, 12, 31), date(2100, 1, 1)):
        with pytest.raises(ValueError):
            period_of("month", bad, SH)


@pytest.mark.parametrize(("local", "day", "week", "month"), [
    # Monday 07:00, after the 06:00 run: Sunday and the week just ended.
    (datetime(2026, 3, 9, 7, 0), "2026-03-08", "2026-W10", "2026-02"),
    # Monday 05:59: Saturday, and the week before.
    (datetime(2026, 3, 9, 5, 59), "2026-03-07", "2026-W09", "2026-02"),
    # Thursday: Wednesday, and the week that ended last Sunday.
    (datetime(2026, 3, 12, 6, 0), "2026-03-11", "2026-W10", "2026-02"),
    # The first of April: March's month once 06:00 has passed, February's before.
    (datetime(2026, 4, 1, 6, 0), "2026-03-31", "2026-W13", "2026-03"),
    (datetime(2026, 4, 1, 5, 0), "2026-03-30", "2026-W13", "2026-02"),
    # New Year's Day: December of the year before.
    (datetime(2027, 1, 1, 8, 0), "2026-12-31", "2026-W52", "2026-12"),
])
def test_due_reports_by_the_local_clock(local, day, week, month):
    s = ReportsSection(daily_at=time(6, 0), weekly_on="monday")
    d = due(local.replace(tzinfo=SH).astimezone(UTC), SH, s.daily_at, s.weekly_on)
    assert (d.day.key, d.week.key, d.month.key) == (day, week, month)


def test_a_weekly_report_on_wednesday_covers_the_last_whole_week():
    s = ReportsSection(daily_at=time(1, 30), weekly_on="wednesday")
    wed_early = datetime(2026, 3, 11, 1, 0, tzinfo=SH)  # before 01:30: not yet this week's
    assert due(wed_early, SH, s.daily_at, s.weekly_on).week.key == "2026-W09"
    wed_late = datetime(2026, 3, 11, 2, 0, tzinfo=SH)
    assert due(wed_late, SH, s.daily_at, s.weekly_on).week.key == "2026-W10"


def test_the_reports_section_takes_a_local_time():
    assert ReportsSection.model_validate({"daily_at": "07:15"}).daily_at == time(7, 15)
    with pytest.raises(ValueError, match="local time"):
        ReportsSection.model_validate({"daily_at": "07:15+08:00"})
