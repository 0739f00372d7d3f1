"""Agent figures over a seeded morning, against values computed by hand (docs/agent-figures.md).

Period 08:00-12:00. Agent 1001: signed in since 07:30 (before the period), wrap-up
08:10-08:11 and 10:05-10:06:30, rest 09:00-09:15, signed out 11:30; two calls answered in the
period (300 s satisfied, 240 s unsatisfied) and one before it; one ring missed in it and one
at 12:00 (outside: the end is exclusive); two transfers (one to an emergency line); scores 90
and 70. Agent 1002: signed in 09:00, training 10:00-10:30, still in at 12:00; one call of
120 s rated 基本满意 and one not rated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_desk.figures.compute import (
    AnsweredLeg,
    MissedRing,
    QaMark,
    StateChange,
    TransferMade,
    agent_figures,
    rolled_up,
)


def t(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 12, 7, hh, mm, ss, tzinfo=UTC)


START, END = t(8, 0), t(12, 0)
ANSWERED = [
    AnsweredLeg("1001", t(8, 5), 300, "satisfied"),
    AnsweredLeg("1001", t(10, 0), 240, "unsatisfied"),
    AnsweredLeg("1001", t(7, 59), 100, "satisfied"),  # before the period
    AnsweredLeg("1002", t(9, 10), 120, "basic"),
    AnsweredLeg("1002", t(9, 40), 60, "none"),
]
MISSED = [MissedRing("1001", t(8, 30)), MissedRing("1001", t(12, 0))]
TRANSFERS = [TransferMade("1001", t(10, 2), "emergency_line"),
             TransferMade("1001", t(10, 3), "branch_center")]
CHANGES = [
    StateChange("1001", t(7, 30), "signed_in"),
    StateChange("1001", t(8, 10), "paused", "after_call_work"),
    StateChange("1001", t(8, 11), "ready"),
    StateChange("1001", t(9, 0), "paused", "rest"),
    StateChange("1001", t(9, 15), "ready"),
    StateChange("1001", t(10, 5), "paused", "after_call_work"),
    StateChange("1001", t(10, 6, 30), "ready"),
    StateChange("1001", t(11, 30), "signed_out"),
    StateChange("1002", t(9, 0), "signed_in"),
    StateChange("1002", t(10, 0), "paused", "training"),
    StateChange("1002", t(10, 30), "ready"),
]
SCORES = [QaMark("1001", t(11, 0), 90), QaMark("1001", t(11, 10), 70)]


def figures() -> dict:
    return agent_figures(START, END, answered=ANSWERED, missed=MISSED, transfers=TRANSFERS,
                         changes=CHANGES, scores=SCORES)


def test_one_agent_equals_the_hand_computed_values() -> None:
    f = figures()["1001"].as_dict()
    assert f["handled"] == 2
    assert f["avg_talk_s"] == 270.0  # (300 + 240) / 2
    assert f["wrap_s"] == 150.0 and f["avg_wrap_s"] == 75.0  # 60 + 90
    assert f["paused_s"] == {"after_call_work": 150.0, "rest": 900.0}
    assert f["signed_in_s"] == 12600.0  # 08:00 (period start) to 11:30
    # (540 talk + 150 wrap-up) / (12600 signed in - 900 rest)
    assert f["occupancy"] == pytest.approx(690 / 11700, abs=1e-4)
    assert f["missed"] == 1
    assert (f["transfers"], f["emergency_transfers"]) == (2, 1)
    assert (f["rated"], f["satisfied"], f["satisfaction_rate"]) == (2, 1, 0.5)
    assert (f["qa_count"], f["qa_avg"]) == (2, 80.0)


def test_second_agent_and_the_team_sum() -> None:
    per = figures()
    g = per["1002"].as_dict()
    assert g["handled"] == 2 and g["avg_talk_s"] == 90.0
    assert g["signed_in_s"] == 10800.0 and g["paused_s"] == {"training": 1800.0}
    assert g["occupancy"] == pytest.approx(180 / 9000, abs=1e-4)
    assert (g["rated"], g["satisfaction_rate"]) == (1, 1.0)  # "none" is not a rating
    team = rolled_up(per, lambda a: "A")["A"].as_dict()
    assert team["handled"] == 4 and team["avg_talk_s"] == 180.0  # 720 / 4
    assert (team["rated"], team["satisfied"]) == (3, 2)
    assert team["occupancy"] == pytest.approx((720 + 150) / (11700 + 9000), abs=1e-4)
    assert team["paused_s"] == {"after_call_work": 150.0, "rest": 900.0, "training": 1800.0}


def test_signing_out_ends_a_pause_and_nothing_counts_after_it() -> None:
    f = agent_figures(START, END, changes=[
        StateChange("1003", t(8, 0), "signed_in"),
        StateChange("1003", t(8, 30), "paused", "meeting"),
        StateChange("1003", t(9, 0), "signed_out"),
        StateChange("1003", t(10, 0), "signed_in"),
        StateChange("1003", t(11, 0), "signed_out")])["1003"]
    assert f.signed_in_s == 2 * 3600 and f.paused_s == {"meeting": 1800}
