"""The 回访 schedule (agent_desk/followup/schedule.py decide): calling hours, retry spacing,
max attempts, lost attempts, cases that left 待回访; and the words of the first prompt."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent_desk.followup.prompt import intro_text, spoken_digits
from agent_desk.followup.schedule import Policy, TaskView, after_attempt, calling_time, decide
from agent_desk.followup.worker import parse_report

TZ = ZoneInfo("Asia/Shanghai")
POLICY = Policy(((time(9), time(12)), (time(14), time(20))), TZ, max_attempts=3,
                retry_after=timedelta(hours=2), attempt_timeout=timedelta(minutes=10))


def local(h: int, m: int = 0, day: int = 7) -> datetime:
    return datetime(2026, 12, day, h, m, tzinfo=TZ).astimezone(UTC)


def task(**kw) -> TaskView:
    base = {"state": "pending", "attempts": 0, "max_attempts": 3, "case_state": "follow_up"}
    return TaskView(**{**base, **kw})


def test_calls_only_within_calling_hours():
    assert decide(task(), local(10), POLICY).action == "dial"
    lunch = decide(task(), local(12, 30), POLICY)
    assert lunch.action == "wait" and lunch.at == local(14)
    night = decide(task(), local(21), POLICY)
    assert night.action == "wait" and night.at == local(9, day=8)
    early = decide(task(), local(7), POLICY)
    assert early.at == local(9)
    assert calling_time(local(19, 59), POLICY) == local(19, 59)


def test_retries_are_spaced_and_bounded():
    # After a failed first attempt at 10:00 the next may go at 12:00: lunch, so 14:00.
    nxt = after_attempt(1, 3, local(10), POLICY)
    assert nxt == local(14)
    assert decide(task(attempts=1, next_at=nxt), local(11), POLICY).at == local(14)
    assert decide(task(attempts=1, next_at=nxt), local(14, 1), POLICY).action == "dial"
    assert after_attempt(3, 3, local(10), POLICY) is None
    assert decide(task(attempts=3), local(10), POLICY).action == "give_up"
    # An operator may allow more attempts on one task.
    assert decide(task(attempts=3, max_attempts=4), local(10), POLICY).action == "dial"


def test_an_attempt_that_never_reports_back_is_lost_after_the_timeout():
    started = local(10)
    calling = task(state="calling", attempts=1, attempt_at=started)
    step = decide(calling, started + timedelta(minutes=5), POLICY)
    assert step.action == "wait" and step.at == started + timedelta(minutes=10)
    assert decide(calling, started + timedelta(minutes=10), POLICY).action == "lost"


def test_a_case_that_left_follow_up_is_not_called_unless_an_operator_asked():
    assert decide(task(case_state="closed"), local(10), POLICY).action == "cancel"
    assert decide(task(case_state="dispatched"), local(10), POLICY).action == "cancel"
    assert decide(task(case_state="closed", origin="operator"), local(10),
                  POLICY).action == "dial"
    assert decide(task(state="answered"), local(23), POLICY).action == "apply"
    assert decide(task(state="done"), local(10), POLICY).action == "idle"


def test_the_prompt_names_the_case_digit_by_digit_and_its_matter():
    assert spoken_digits("20261207000011") == "二零二六幺二零七零零零零幺幺"
    text = intro_text("工单号{number}，事项：{matter}。", "2026120700001",
                      "城乡建设 › 市容环卫 › 占道经营")
    assert text == "工单号二零二六幺二零七零零零零幺，事项：占道经营。"
    assert intro_text("事项：{matter}。", "1", None) == "事项：您反映的问题。"


def test_reports_from_the_dialplan_are_read_strictly():
    r = parse_report({"agi_arg_1": "12", "agi_arg_2": "1", "agi_arg_3": "answers",
                      "agi_arg_4": "2", "agi_arg_5": "3"})
    assert r is not None and (r.task, r.attempt, r.event) == (12, 1, "ANSWERS")
    assert (r.resolved_key, r.satisfaction_key) == ("2", "3")
    assert parse_report({"agi_arg_1": "x", "agi_arg_2": "1", "agi_arg_3": "ANSWER"}) is None
    assert parse_report({"agi_arg_1": "1", "agi_arg_2": "1", "agi_arg_3": "A,B"}) is None
