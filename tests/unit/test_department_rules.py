"""What a department is shown without I/O (agent_desk/departments/rules.py): when the
caller's number is in clear, and the 红黄灯 of its dispatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_desk.departments import rules
from agent_desk.departments.tokens import bearer

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(("role", "state", "appeal", "clear"), [
    ("lead", "signed", "complaint", True),  # works on it and must call back
    ("lead", "signed", "consultation", True),
    ("lead", "pending", "complaint", False),  # not signed for: may return it
    ("lead", "replied", "complaint", False),  # answered: masked again
    ("lead", "returned", "help", False),
    ("assist", "signed", "complaint", False),  # the lead answers the caller
    ("lead", "signed", "suggestion", False),  # no call back needed
    ("lead", "signed", "praise", False),
    ("lead", "signed", None, False),
])
def test_the_caller_is_in_clear_only_for_the_lead_working_on_a_call_back(
        role: str, state: str, appeal: str | None, clear: bool) -> None:
    assert rules.caller_in_clear(role=role, dispatch_state=state, appeal_type=appeal) is clear


def test_the_light_runs_against_the_limit_of_the_dispatch_state() -> None:
    sign_due, due = T0 + timedelta(hours=2), T0 + timedelta(days=5)

    def light(state: str, now: datetime, swept: str = "none") -> str:
        return rules.light(state, T0, sign_due, due, now, yellow_share=0.8, swept=swept)

    assert light("pending", T0 + timedelta(hours=1)) == "green"
    assert light("pending", T0 + timedelta(hours=1, minutes=40)) == "yellow"
    assert light("pending", T0 + timedelta(hours=3)) == "red"  # not signed in time
    assert light("signed", T0 + timedelta(hours=3)) == "green"  # now the 5 days count
    assert light("signed", T0 + timedelta(days=4, hours=1)) == "yellow"
    assert light("signed", T0 + timedelta(days=1), swept="yellow") == "yellow"
    assert light("signed", T0 + timedelta(days=1), swept="red") == "red"
    assert light("signed", T0 + timedelta(days=6)) == "red"
    assert light("replied", T0 + timedelta(days=6)) == "none"  # the clock has stopped
    assert rules.deadline("pending", sign_due, due) == sign_due
    assert rules.deadline("signed", sign_due, due) == due
    assert rules.deadline("returned", sign_due, due) is None


def test_only_a_bearer_department_token_is_read() -> None:
    assert bearer("Bearer dpt_abc") == "dpt_abc"
    assert bearer("bearer   dpt_abc ") == "dpt_abc"
    assert bearer("Basic dpt_abc") is None
    assert bearer("Bearer abc") is None
    assert bearer(None) is None
    assert bearer("Bearer dpt_" + "x" * 200) is None
