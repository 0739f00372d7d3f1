"""The daily 质检 sample: every call a rule picks (capped), plus a reproducible random draw."""

from __future__ import annotations

from agent_desk.quality.sample import CallSeen, Rules, decide

RULES = Rules(random_per_agent=2, long_call_s=600, max_by_rules=3)


def calls() -> list[CallSeen]:
    out = [CallSeen(i, f"2026120700{i:04d}", "1001", 60.0) for i in range(1, 11)]
    out += [
        CallSeen(11, "20261207000011", "1001", 700.0),  # long
        CallSeen(12, "20261207000012", "1001", 90.0, rating="unsatisfied"),
        CallSeen(13, "20261207000013", "1001", 80.0, category="complaint"),
        CallSeen(14, "20261207000014", "1001", 50.0, emergency_transfer=True),
        CallSeen(21, "20261207000021", "1002", 30.0),
    ]
    return out


def test_rules_first_capped_longest_first_then_random() -> None:
    picks = decide("2026-12-07", calls(), RULES)
    mine = [p for p in picks if p.agent == "1001"]
    by_rule = [p for p in mine if p.reasons != ("random",)]
    assert [(p.case_id, p.reasons) for p in by_rule] == [
        (11, ("long_call",)), (12, ("unsatisfied",)), (13, ("complaint",))]
    drawn = [p for p in mine if p.reasons == ("random",)]
    assert len(drawn) == 2
    # The capped rule call (14) may be drawn at random; the rule calls are not drawn twice.
    assert {p.case_id for p in drawn}.isdisjoint({11, 12, 13})
    # An agent with fewer calls than the draw gets them all.
    assert [(p.case_id, p.reasons) for p in picks if p.agent == "1002"] == [(21, ("random",))]


def test_the_same_day_draws_the_same_calls_and_another_day_may_not() -> None:
    one = decide("2026-12-07", calls(), RULES)
    assert decide("2026-12-07", list(reversed(calls())), RULES) == one
    days = {tuple(p.case_id for p in decide(f"2026-12-{d:02d}", calls(), RULES))
            for d in range(1, 11)}
    assert len(days) > 1


def test_every_rule_is_named() -> None:
    c = CallSeen(1, "n", "1001", 900.0, rating="unsatisfied", category="complaint",
                 emergency_transfer=True)
    [p] = decide("d", [c], Rules(random_per_agent=0))
    assert p.reasons == ("long_call", "unsatisfied", "complaint", "emergency_transfer")
