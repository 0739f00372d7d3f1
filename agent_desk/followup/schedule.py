"""When a 回访 task calls, waits, gives up or stops: pure functions of the task, the case's
loop state, the clock and the policy ([follow_up]), free of I/O so unit tests cover them.

- Calls happen only within the calling hours (local time, every day): a task due at night
  waits for the next opening.
- After an attempt that did not get both answers (no answer, busy, failed, no keys, hung up,
  or never reported back within ``attempt_timeout``), the next one waits ``retry_after`` —
  and the calling hours.
- After ``max_attempts`` the task gives up: the case loop hears ``reached=False`` (our
  choice: the case closes as 回访 not reached, like a 回访 agent who could not reach the
  caller; docs/follow-up.md).
- A task the case loop made (origin ``loop``) is cancelled when the case left 待回访 before
  the call (a supervisor closed or reopened it); an operator's task calls whatever the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Literal

PENDING, CALLING, ANSWERED = "pending", "calling", "answered"
DONE, REFUSED, CANCELLED = "done", "refused", "cancelled"
ACTIVE = (PENDING, CALLING, ANSWERED)
FOLLOW_UP = "follow_up"  # cases/loop/states.py: 待回访

Action = Literal["wait", "dial", "give_up", "cancel", "lost", "apply", "idle"]


@dataclass(frozen=True)
class Policy:
    periods: tuple[tuple[time, time], ...]  # calling hours, local time, in order
    tz: tzinfo
    max_attempts: int = 3
    retry_after: timedelta = timedelta(hours=2)
    attempt_timeout: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class TaskView:
    state: str
    attempts: int
    max_attempts: int
    next_at: datetime | None = None
    attempt_at: datetime | None = None
    case_state: str | None = None  # the case loop's state (None: not in the loop)
    origin: str = "loop"  # loop | operator


@dataclass(frozen=True)
class Step:
    action: Action
    at: datetime | None = None  # wait: until when
    why: str = ""


def calling_time(now: datetime, policy: Policy) -> datetime:
    """The first moment at or after ``now`` within the calling hours."""
    local = now.astimezone(policy.tz)
    for day in range(0, 8):
        date = local.date() + timedelta(days=day)
        for start, end in policy.periods:
            opens = datetime.combine(date, start, policy.tz)
            closes = datetime.combine(date, end, policy.tz)
            if closes <= local:
                continue
            return now if opens <= local else opens.astimezone(now.tzinfo)
    return now  # no period at all: the config refuses that


def after_attempt(attempts: int, max_attempts: int, now: datetime, policy: Policy
                  ) -> datetime | None:
    """When the next attempt may go after a failed one; None: no more attempts."""
    if attempts >= max_attempts:
        return None
    return calling_time(now + policy.retry_after, policy)


def decide(task: TaskView, now: datetime, policy: Policy) -> Step:
    """What the worker does with ``task`` at ``now``."""
    if task.state == ANSWERED:
        return Step("apply", why="answers to apply to the case loop")
    if task.state == CALLING:
        if task.attempt_at is None or now - task.attempt_at >= policy.attempt_timeout:
            return Step("lost", why="the attempt never reported back")
        return Step("wait", task.attempt_at + policy.attempt_timeout, "a call is under way")
    if task.state != PENDING:
        return Step("idle", why=f"the task is {task.state}")
    if task.attempts >= task.max_attempts:
        return Step("give_up", why=f"{task.attempts} attempts without the caller's answers")
    if task.origin == "loop" and task.case_state != FOLLOW_UP:
        return Step("cancel", why=f"the case is {task.case_state or 'not in the loop'}, "
                                  "no longer waiting for 回访")
    due = now if task.next_at is None or task.next_at <= now else task.next_at
    opens = calling_time(due, policy)
    if opens > now:
        return Step("wait", opens, "outside calling hours" if due == now else "retry spacing")
    return Step("dial")
