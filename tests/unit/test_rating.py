"""一键评价: the key as the case keeps it, why a call has none, and the 满意率 figures."""

from __future__ import annotations

from agent_desk.supervision.satisfaction import figure, figures
from telephony.calls.rating import rating_of, unrated_why


def test_keys_one_to_three_rate_anything_else_is_not_rated():
    assert [rating_of(k) for k in ("key:1", "key:2", "key:3", "1")] == [
        "satisfied", "basic", "unsatisfied", "satisfied"]
    assert {rating_of(k) for k in ("key:", "key:4", "key:*", "key:#", "", "key:12")} == {"none"}
    assert unrated_why("caller") == "caller_hung_up"
    assert unrated_why("agent") == "no_key"
    assert unrated_why(None) == "not_asked"


def test_satisfaction_rate_counts_satisfied_and_basic_among_the_rated():
    f = figure({"satisfied": 6, "basic": 2, "unsatisfied": 2, "none": 10})
    assert f["rated"] == 10 and f["answered"] == 20
    assert f["satisfaction_rate"] == 0.8 and f["rated_share"] == 0.5
    empty = figure({"none": 3})
    assert empty["satisfaction_rate"] is None and empty["rated_share"] == 0.0
    assert figure({})["rated_share"] is None


def test_figures_per_city_and_queue():
    out = figures([("nanjing", "nanjing-general", "satisfied", 3),
                   ("nanjing", "nanjing-lang_en", "unsatisfied", 1),
                   ("suzhou", "suzhou-general", "basic", 2), (None, None, "none", 4)])
    assert out["cities"]["nanjing"]["satisfaction_rate"] == 0.75
    assert out["queues"]["nanjing-lang_en"]["satisfaction_rate"] == 0.0
    assert out["cities"]["suzhou"]["basic"] == 2
    assert set(out["cities"]) == {"nanjing", "suzhou"}
