"""Working days, office hours, time limits and the traffic light, on the published 2025 and 2026
calendars (国务院办公厅 holiday notices as chinesecalendar 1.11 carries them):

- 2025 National Day and Mid-Autumn: 10-01 … 10-08 rest, Sunday 09-28 and Saturday 10-11 work.
- 2026 Spring Festival: 02-15 … 02-23 rest, Saturdays 02-14 and 02-28 work.
- 2026 National Day: 10-01 … 10-07 rest, Saturday 10-10 works; Mid-Autumn Friday 09-25 rests
  and Sunday 09-20 works.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cases.loop.calendar import CalendarNotCovered, WorkCalendar
from cases.loop.deadlines import TimeLimits, WorkingTimePolicy, handle_due, light, sign_due
from cases.loop.sweep import Assessment, DispatchClock, assess, worst
from common.config import CaseLoopSection
from common.errors import DomainError

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SH)


# -- working days ----------------------------------------------------------------------------

@pytest.mark.parametrize(("day", "works"), [
    (date(2026, 2, 14), True),    # Saturday made a working day (Spring Festival 调休)
    (date(2026, 2, 28), True),
    (date(2026, 2, 16), False),   # Spring Festival, a Monday
    (date(2026, 2, 21), False),   # an ordinary Saturday inside the holiday
    (date(2026, 10, 1), False),   # National Day
    (date(2026, 10, 10), True),   # Saturday made a working day
    (date(2026, 9, 25), False),   # Mid-Autumn, a Friday
    (date(2026, 9, 20), True),    # Sunday made a working day
    (date(2025, 10, 8), False),
    (date(2025, 10, 11), True),
    (date(2025, 9, 28), True),
    (date(2026, 3, 7), False),    # an ordinary Saturday
    (date(2026, 3, 9), True),     # an ordinary Monday
])
def test_published_calendar(day: date, works: bool) -> None:
    assert CAL.is_workday(day) is works


def test_a_year_nobody_describes_is_an_error_naming_it_when_estimates_are_off() -> None:
    strict = WorkCalendar(estimate_unknown_years=False)
    with pytest.raises(CalendarNotCovered) as err:
        strict.is_workday(date(2099, 1, 5))
    assert err.value.code == "calendar_not_covered" and "2099" in err.value.message
    assert isinstance(err.value, DomainError)
    with pytest.raises(CalendarNotCovered):
        strict.add_working_days(at(2099, 1, 5, 10), 1)


def test_a_year_nobody_describes_counts_monday_to_friday_and_is_remembered() -> None:
    cal = WorkCalendar()
    assert cal.is_workday(date(2099, 1, 2)) and not cal.is_workday(date(2099, 1, 3))
    assert cal.estimated_years == {2099}
    assert cal.add_working_days(at(2099, 1, 2, 10), 1) == at(2099, 1, 5, 10)


def test_a_declared_year_rests_on_weekends_and_on_its_listed_holidays() -> None:
    cal = WorkCalendar(declared_years=[2099], extra_holidays=[date(2099, 1, 1)],
                       extra_workdays=[date(2099, 1, 3)])
    assert not cal.is_workday(date(2099, 1, 1))      # a Thursday, listed as a holiday
    assert cal.is_workday(date(2099, 1, 2))          # Friday
    assert cal.is_workday(date(2099, 1, 3))          # Saturday, listed as a workday
    assert not cal.is_workday(date(2099, 1, 4))      # Sunday
    # Listing a date is not declaring its year.
    with pytest.raises(CalendarNotCovered):
        WorkCalendar(extra_holidays=[date(2098, 1, 1)],
                     estimate_unknown_years=False).is_workday(date(2098, 1, 2))


def test_overrides_change_known_years_too() -> None:
    cal = WorkCalendar(extra_holidays=[date(2026, 3, 9)], extra_workdays=[date(2026, 3, 7)])
    assert not cal.is_workday(date(2026, 3, 9)) and cal.is_workday(date(2026, 3, 7))
    with pytest.raises(ValueError, match="2026-03-09"):
        WorkCalendar(extra_holidays=[date(2026, 3, 9)], extra_workdays=[date(2026, 3, 9)])


def test_is_workday_refuses_a_datetime_and_naive_times_are_refused() -> None:
    with pytest.raises(TypeError):
        CAL.is_workday(at(2026, 3, 9, 10))
    with pytest.raises(ValueError, match="naive"):
        CAL.add_working_days(datetime(2026, 3, 9, 10), 1)


# -- office hours ----------------------------------------------------------------------------

@pytest.mark.parametrize("hours", [
    [],
    [(time(12), time(8))],
    [(time(8), time(12)), (time(11), time(17))],
    [(time(13), time(17)), (time(8), time(12))],
    [(time(8, tzinfo=UTC), time(12))],
])
def test_bad_office_hours_are_refused(hours: list[tuple[time, time]]) -> None:
    with pytest.raises(ValueError, match="office hours"):
        WorkCalendar(office_hours=hours)


def test_default_office_day_is_seven_and_a_half_hours() -> None:
    assert CAL.day_length == timedelta(hours=7, minutes=30)


# -- adding working days ---------------------------------------------------------------------

def test_friday_afternoon_plus_one_working_day_is_monday_same_time() -> None:
    assert CAL.add_working_days(at(2026, 1, 16, 16), 1) == at(2026, 1, 19, 16)


def test_utc_in_is_read_in_the_service_zone() -> None:
    due = CAL.add_working_days(datetime(2026, 1, 16, 8, tzinfo=UTC), 1)  # 16:00 in Shanghai
    assert due == datetime(2026, 1, 19, 8, tzinfo=UTC)
    assert due.tzinfo == SH


def test_the_day_before_national_day_skips_the_holiday() -> None:
    assert CAL.add_working_days(at(2025, 9, 30, 16), 1) == at(2025, 10, 9, 16)
    assert CAL.add_working_days(at(2025, 9, 30, 16), 3) == at(2025, 10, 11, 16)  # Saturday works


def test_a_complaint_spanning_national_day_2026() -> None:
    # Five working days from Wednesday 09-30: 10-08, 10-09, 10-10 (Saturday), 10-12, 10-13.
    assert CAL.add_working_days(at(2026, 9, 30, 9), 5) == at(2026, 10, 13, 9)


def test_spring_festival_working_saturdays() -> None:
    assert CAL.add_working_days(at(2026, 2, 13, 16), 1) == at(2026, 2, 14, 16)
    assert CAL.add_working_days(at(2026, 2, 13, 16), 2) == at(2026, 2, 24, 16)
    assert CAL.add_working_days(at(2026, 2, 27, 10), 1) == at(2026, 2, 28, 10)


def test_outside_office_hours_the_count_starts_at_the_last_closing() -> None:
    # Dispatched on a rest Saturday, or before Monday's opening: due Monday at closing time.
    assert CAL.add_working_days(at(2026, 3, 7, 10), 1) == at(2026, 3, 9, 17, 30)
    assert CAL.add_working_days(at(2026, 3, 9, 7), 1) == at(2026, 3, 9, 17, 30)
    assert CAL.add_working_days(at(2026, 3, 9, 8, 30), 1) == at(2026, 3, 9, 17, 30)
    # In the lunch break: from the morning's end.
    assert CAL.add_working_days(at(2026, 3, 9, 12, 45), 1) == at(2026, 3, 10, 12)
    # After closing: from today's closing.
    assert CAL.add_working_days(at(2026, 3, 9, 20), 1) == at(2026, 3, 10, 17, 30)


def test_zero_days_is_the_start_and_negative_is_refused() -> None:
    assert CAL.add_working_days(at(2026, 3, 7, 10), 0) == at(2026, 3, 7, 10)
    with pytest.raises(ValueError):
        CAL.add_working_days(at(2026, 3, 9, 10), -1)


# -- adding working hours --------------------------------------------------------------------

def test_two_working_hours_from_five_pm_are_next_morning() -> None:
    assert CAL.add_working_hours(at(2026, 3, 9, 17), 2) == at(2026, 3, 10, 10)
    # Friday: Monday morning.
    assert CAL.add_working_hours(at(2026, 3, 13, 17), 2) == at(2026, 3, 16, 10)


def test_working_hours_skip_lunch_and_holidays() -> None:
    assert CAL.add_working_hours(at(2026, 3, 9, 11), 2) == at(2026, 3, 9, 14, 30)
    # The working Saturday before Spring Festival, then the holiday: Tuesday after it.
    assert CAL.add_working_hours(at(2026, 2, 14, 17), 2) == at(2026, 2, 24, 10)
    # Dispatched in the holiday: the clock starts when offices open.
    assert CAL.add_working_hours(at(2026, 10, 3, 15), 2) == at(2026, 10, 8, 10, 30)


def test_hours_ending_on_closing_time_are_due_at_closing() -> None:
    assert CAL.add_working_hours(at(2026, 3, 9, 15, 30), 2) == at(2026, 3, 9, 17, 30)


def test_configured_office_hours() -> None:
    cal = WorkCalendar(office_hours=[(time(9), time(18))])
    assert cal.add_working_hours(at(2026, 3, 9, 17), 2) == at(2026, 3, 10, 10)
    assert cal.working_time_between(at(2026, 3, 9), at(2026, 3, 10)) == timedelta(hours=9)


# -- working time between --------------------------------------------------------------------

def test_working_time_between() -> None:
    assert CAL.working_time_between(at(2026, 1, 16, 16), at(2026, 1, 19, 16)) == \
        timedelta(hours=7, minutes=30)
    # The whole of National Day week 2026 holds no working time.
    assert CAL.working_seconds_between(at(2026, 9, 30, 17, 30), at(2026, 10, 8, 8, 30)) == 0
    assert CAL.working_time_between(at(2026, 9, 30, 17), at(2026, 10, 8, 9)) == \
        timedelta(minutes=60)
    assert CAL.working_time_between(at(2026, 1, 19, 16), at(2026, 1, 16, 16)) == \
        -timedelta(hours=7, minutes=30)
    assert CAL.working_time_between(at(2026, 3, 9, 12, 10), at(2026, 3, 9, 13, 20)) == \
        timedelta()


_moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 9, 1)) \
    .map(lambda d: d.replace(microsecond=0, tzinfo=SH))


@settings(max_examples=200, deadline=None)
@given(_moments, st.integers(min_value=1, max_value=15))
def test_n_working_days_hold_n_office_days(start: datetime, days: int) -> None:
    due = CAL.add_working_days(start, days)
    assert CAL.working_time_between(start, due) == CAL.day_length * days
    # The earliest such instant: a deadline never lands at an opening time.
    assert CAL.add_working_time(start, CAL.day_length * days) == due


@settings(max_examples=200, deadline=None)
@given(_moments, st.integers(min_value=1, max_value=60 * 60 * 40))
def test_added_working_time_is_measured_back(start: datetime, seconds: int) -> None:
    amount = timedelta(seconds=seconds)
    due = CAL.add_working_time(start, amount)
    assert CAL.working_time_between(start, due) == amount
    assert CAL.is_workday(due.date())


# -- time limits -----------------------------------------------------------------------------

def test_time_limits_defaults_and_validation() -> None:
    limits = TimeLimits()
    assert limits.sign_hours == 2 and limits.yellow_share == 0.8
    assert [limits.days_for(k) for k in
            ("consultation", "help", "complaint", "report", "suggestion", "praise")] == \
        [1, 3, 5, 5, 10, 5]
    with pytest.raises(DomainError) as err:
        limits.days_for("gossip")
    assert err.value.code == "invalid"
    for bad in ({"sign_hours": 0}, {"yellow_share": 0}, {"yellow_share": 1.5},
                {"handling_days": {"help": 0}}):
        with pytest.raises(ValueError):
            TimeLimits(**bad)


def test_time_limits_do_not_follow_a_changed_dict() -> None:
    days = {"help": 3}
    limits = TimeLimits(handling_days=days)
    days["help"] = 30
    assert limits.days_for("help") == 3


def test_sign_and_handle_deadlines() -> None:
    limits = TimeLimits()
    assert sign_due(at(2026, 9, 30, 16, 30), limits, CAL) == at(2026, 10, 8, 9, 30)
    assert handle_due(at(2026, 9, 30, 9), "complaint", limits, CAL) == at(2026, 10, 13, 9)
    assert handle_due(at(2026, 9, 30, 9), "complaint", limits, CAL, extension_days=2) == \
        at(2026, 10, 15, 9)
    assert handle_due(at(2026, 2, 13, 10), "consultation", limits, CAL) == at(2026, 2, 14, 10)
    with pytest.raises(ValueError):
        handle_due(at(2026, 9, 30, 9), "complaint", limits, CAL, extension_days=-1)


def test_light_counts_working_time_not_the_clock() -> None:
    # A consultation dispatched Friday 16:00 is due Monday 16:00: 7.5 working hours; yellow
    # from 6 of them used (Monday 14:30), though most of the calendar time passed on Saturday.
    start, due = at(2026, 1, 16, 16), at(2026, 1, 19, 16)
    assert light(start, due, at(2026, 1, 16, 17), 0.8, CAL) == "green"
    assert light(start, due, at(2026, 1, 18, 23), 0.8, CAL) == "green"
    assert light(start, due, at(2026, 1, 19, 14, 29), 0.8, CAL) == "green"
    assert light(start, due, at(2026, 1, 19, 14, 30), 0.8, CAL) == "yellow"
    assert light(start, due, due, 0.8, CAL) == "yellow"
    assert light(start, due, due + timedelta(seconds=1), 0.8, CAL) == "red"


def test_light_across_a_holiday() -> None:
    # Signed 2026-09-30 09:00, complaint due 10-13 09:00 (5 × 7.5 h = 37.5 h); 80 % is 30 h,
    # reached on 10-12 at 09:00 (7 h on 09-30, 7.5 h on each of 10-08, 10-09 and Saturday 10-10).
    # National Day itself uses none of it.
    start = at(2026, 9, 30, 9)
    due = handle_due(start, "complaint", TimeLimits(), CAL)
    assert light(start, due, at(2026, 10, 7, 23), 0.8, CAL) == "green"
    assert light(start, due, at(2026, 10, 12, 8, 59), 0.8, CAL) == "green"
    assert light(start, due, at(2026, 10, 12, 9), 0.8, CAL) == "yellow"
    assert light(start, due, at(2026, 10, 13, 9, 1), 0.8, CAL) == "red"


def test_light_of_a_deadline_with_no_working_time_left() -> None:
    start = at(2026, 10, 2, 10)
    assert light(start, start, start, 0.8, CAL) == "yellow"
    assert light(start, start, start + timedelta(minutes=1), 0.8, CAL) == "red"


def test_the_policy_the_loop_store_takes() -> None:
    policy = WorkingTimePolicy(TimeLimits(), CAL)
    assert policy.sign_due(at(2026, 3, 13, 17)) == at(2026, 3, 16, 10)
    assert policy.handle_due("help", at(2026, 9, 30, 9)) == at(2026, 10, 10, 9)
    assert policy.handle_due("help", at(2026, 9, 30, 9), 1) == at(2026, 10, 12, 9)
    assert policy.light(at(2026, 9, 30, 9), at(2026, 10, 10, 9), at(2026, 10, 5, 9)) == "green"


# -- the sweep's pure part -------------------------------------------------------------------

SIGN_DUE, DUE = at(2026, 3, 13, 11), at(2026, 3, 16, 9)


def clock(state: str, *, sign_due: datetime | None = SIGN_DUE,
          due: datetime | None = DUE) -> DispatchClock:
    # Dispatched Friday 09:00: sign by 11:00, a consultation handled by Monday 09:00.
    return DispatchClock(state, at(2026, 3, 13, 9), sign_due, due)


def test_assess_a_pending_dispatch_runs_both_limits() -> None:
    assert assess(clock("pending"), at(2026, 3, 13, 9, 30), 0.8, CAL) == \
        Assessment("green", ())
    assert assess(clock("pending"), at(2026, 3, 13, 10, 40), 0.8, CAL) == \
        Assessment("yellow", ())
    assert assess(clock("pending"), at(2026, 3, 13, 11, 1), 0.8, CAL) == \
        Assessment("red", ("sign",))
    assert assess(clock("pending"), at(2026, 3, 16, 9, 1), 0.8, CAL) == \
        Assessment("red", ("sign", "handle"))


def test_assess_a_signed_dispatch_runs_the_handling_limit_only() -> None:
    assert assess(clock("signed"), at(2026, 3, 13, 11, 1), 0.8, CAL) == \
        Assessment("green", ())
    assert assess(clock("signed"), at(2026, 3, 14, 12), 0.8, CAL) == Assessment("yellow", ())
    assert assess(clock("signed"), at(2026, 3, 16, 9, 1), 0.8, CAL) == \
        Assessment("red", ("handle",))


def test_assess_a_stopped_clock() -> None:
    for state in ("replied", "returned", "cancelled"):
        assert assess(clock(state), at(2026, 3, 20), 0.8, CAL) is None
    assert assess(clock("signed", due=None), at(2026, 3, 20), 0.8, CAL) is None


def test_the_worst_light() -> None:
    assert worst(["green", "red", "yellow"]) == "red"
    assert worst(["green", "yellow"]) == "yellow"
    assert worst([]) == "none"


def test_covers() -> None:
    assert CAL.covers(2026) and not CAL.covers(2099)
    assert WorkCalendar(declared_years=[2099]).covers(2099)


# -- configuration ---------------------------------------------------------------------------

def test_office_hours_and_overrides_in_the_configuration() -> None:
    section = CaseLoopSection(office_hours=["09:00-12:00", "14:00 - 18:00"],
                              calendar_years=[2027], extra_holidays=[date(2027, 1, 1)])
    assert section.office_periods() == [(time(9), time(12)), (time(14), time(18))]
    for bad, why in ((["8:30-12:00"], "HH:MM-HH:MM"), (["12:00-08:00"], "ends before"),
                     (["08:00-12:00", "11:00-17:00"], "overlaps"), ([], "at least one"),
                     (["25:00-26:00"], "HH:MM-HH:MM")):
        with pytest.raises(ValidationError, match=why) as err:
            CaseLoopSection(office_hours=bad)
        assert "office_hours" in str(err.value)
    with pytest.raises(ValidationError, match="2027-01-01"):
        CaseLoopSection(extra_holidays=[date(2027, 1, 1)], extra_workdays=[date(2027, 1, 1)])
