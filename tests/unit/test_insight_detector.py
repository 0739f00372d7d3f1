"""Hot topics, the pure part: the Poisson tail, the verdict on a window's count, and the plan
that makes one alert per burst (agent_desk/insight/detector.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from agent_desk.insight.detector import (
    KEYWORD,
    MATTER,
    OpenAlert,
    Rule,
    Signal,
    binomial_tail,
    decide,
    plan,
    poisson_tail,
)

RULE = Rule(p_alert=1e-4, p_clear=0.05, min_count=5, min_expected=1.0, overlap_share=0.5,
            cooldown=timedelta(minutes=30))
NOW = datetime(2026, 3, 30, 2, 0, tzinfo=UTC)


def direct_tail(k: int, lam: float) -> float:
    return 1.0 - sum(math.exp(-lam) * lam ** i / math.factorial(i) for i in range(k))


@pytest.mark.parametrize(("k", "lam"), [(0, 3.0), (1, 1.0), (3, 2.5), (5, 1.0), (10, 4.0),
                                        (20, 20.0), (2, 30.0)])
def test_poisson_tail_matches_the_sum_of_terms(k: int, lam: float) -> None:
    assert poisson_tail(k, lam) == pytest.approx(direct_tail(k, lam), rel=1e-9, abs=1e-12)


def test_poisson_tail_far_out_is_tiny_not_zero_and_falls() -> None:
    far = poisson_tail(25, 1.0)
    assert 0 < far < 1e-24
    assert poisson_tail(26, 1.0) < far
    assert poisson_tail(1, 0.0) == 0.0 and poisson_tail(0, 0.0) == 1.0


def direct_binomial(x: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(x, n + 1))


@pytest.mark.parametrize(("x", "n", "p"), [(0, 5, 0.2), (1, 1, 0.5), (3, 10, 0.2),
                                           (12, 36, 0.2), (25, 29, 0.2), (2, 40, 0.2),
                                           (30, 30, 0.5), (100, 400, 0.2)])
def test_binomial_tail_matches_the_sum_of_terms(x: int, n: int, p: float) -> None:
    assert binomial_tail(x, n, p) == pytest.approx(direct_binomial(x, n, p), rel=1e-9,
                                                   abs=1e-12)


def test_a_usual_count_is_cold_a_burst_is_hot() -> None:
    usual = decide(4, [3, 5, 4, 4], RULE)
    assert not usual.hot and not usual.warm and usual.expected == 4.0
    burst = decide(25, [1, 0, 2, 1], RULE)
    assert burst.hot and burst.warm and burst.p < 1e-12


def test_few_cases_never_alert_however_unlikely() -> None:
    v = decide(4, [0, 0, 0, 0], RULE)  # (1/5)^4: improbable, but only four cases
    assert v.p < 0.002 and not v.hot and not v.warm


def test_one_week_of_history_says_less_than_four() -> None:
    # 14 against 5 last week is within chance (the 5 may have been a quiet week); 14 against
    # 5, 5, 5, 5 is not.
    assert not decide(14, [5], RULE).hot and decide(14, [5], RULE).p > 0.01
    assert decide(14, [5, 5, 5, 5], RULE).p < 0.005
    assert decide(20, [5, 5, 5, 5], RULE).hot and not decide(20, [5], RULE).hot


def test_a_never_seen_series_needs_more_than_the_minimum() -> None:
    # Expected floored at min_expected (1.0): 5 cases are p ~ 0.0037, not an alert; 8 are.
    assert not decide(5, [], RULE).hot and decide(5, [], RULE).warm
    assert decide(8, [], RULE).hot


def test_warm_between_the_two_thresholds() -> None:
    v = decide(12, [6, 6, 6, 6], RULE)  # P(X>=12 | 6) ~ 0.02
    assert v.warm and not v.hot


def sig(kind: str, key: str, observed: int, baseline: list[int], cases: range | set[int]
        ) -> Signal:
    return Signal(kind, key, decide(observed, baseline, RULE), frozenset(cases), "nanjing")


def test_a_burst_and_its_words_make_one_alert() -> None:
    burst = range(100, 125)
    signals = [
        sig(MATTER, "matter|nanjing|xuanwu|utilities.water.outage", 25, [1, 1, 0, 1], burst),
        # The burst's words: all its cases plus the usual few elsewhere.
        sig(KEYWORD, "keyword|nanjing|ting-shui", 28, [2, 3, 3, 2], {*burst, 1, 2, 3}),
        # A common word lifted by the burst (and a little above its usual count besides):
        # without the burst's cases it would not be hot.
        sig(KEYWORD, "keyword|nanjing|xiao-qu", 55, [20, 20, 20, 20],
            {*range(100, 120), *range(1, 36)}),
    ]
    p = plan(signals, [], NOW, RULE)
    assert len(p.bursts) == 1 and p.close == []
    b = p.bursts[0]
    assert b.id is None and b.lead.kind == MATTER
    assert len(b.signals) == 3 and b.added == set(burst) | set(range(1, 36))


def test_the_next_pass_joins_the_open_alert_and_adds_only_new_cases() -> None:
    key = "matter|nanjing|xuanwu|utilities.water.outage"
    open_alert = OpenAlert(7, {key}, set(range(100, 125)), NOW - timedelta(minutes=1))
    p = plan([sig(MATTER, key, 27, [1, 1, 0, 1], range(100, 127))], [open_alert], NOW, RULE)
    assert [b.id for b in p.bursts] == [7] and p.bursts[0].added == {125, 126}


def test_a_warm_series_keeps_its_alert_but_never_opens_one() -> None:
    key = "matter|nanjing|xuanwu|utilities.water.outage"
    warm = sig(MATTER, key, 12, [6, 6, 6, 6], range(12))
    assert plan([warm], [], NOW, RULE).bursts == []
    alert = OpenAlert(7, {key}, set(range(12)), NOW - timedelta(hours=2))
    p = plan([warm], [alert], NOW, RULE)
    assert [b.id for b in p.bursts] == [7] and p.close == []


def test_a_burst_subsides_after_the_cooldown_then_a_new_one_is_a_new_alert() -> None:
    key = "matter|nanjing|xuanwu|utilities.water.outage"
    recent = OpenAlert(7, {key}, set(range(10)), NOW - timedelta(minutes=10))
    p = plan([], [recent], NOW, RULE)
    assert p.close == [] and p.quiet == [7]
    old = OpenAlert(7, {key}, set(range(10)), NOW - timedelta(minutes=31))
    assert plan([], [old], NOW, RULE).close == [7]
    again = plan([sig(MATTER, key, 20, [1, 1, 1, 1], range(50, 70))], [], NOW, RULE)
    assert [b.id for b in again.bursts] == [None]


def test_an_unrelated_hot_word_is_its_own_alert() -> None:
    water = sig(MATTER, "matter|nanjing|xuanwu|utilities.water.outage", 25, [1, 1, 1, 1],
                range(100, 125))
    # Two of its cases are also in the burst: without them it is still hot.
    buses = sig(KEYWORD, "keyword|nanjing|gong-jiao", 15, [1, 2, 1, 1],
                {*range(300, 313), 100, 101})
    p = plan([water, buses], [], NOW, RULE)
    assert len(p.bursts) == 2 and {b.lead.key for b in p.bursts} == {water.key, buses.key}
