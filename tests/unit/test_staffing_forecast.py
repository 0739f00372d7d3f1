"""The staffing forecast on a seeded history against published Erlang C values.

Reference: Call Centre Helper, "Erlang C formula – made simple" (the worked example also
cited in queueing/surge/erlang.py): 100 calls in 30 minutes, 180 s handle time, 80 % answered
within 20 s → traffic 10 Erlangs; 13 agents give 79.6 %, 14 give 88.8 %: 14 agents."""

from __future__ import annotations

import math
from datetime import date

import pytest

from queueing.surge.erlang import erlang_c
from queueing.surge.forecast import (
    INTERVALS,
    agents_for,
    day_forecast,
    expected,
    history_days,
)


def test_history_is_the_same_weekday_of_the_last_weeks() -> None:
    assert history_days(date(2026, 12, 7), 3) == [date(2026, 11, 30), date(2026, 11, 23),
                                                   date(2026, 11, 16)]
    assert expected([90, 100, 110]) == 100.0
    assert expected([]) == 0.0


def test_seeded_history_gives_the_published_staffing() -> None:
    # Three Mondays with 90, 100 and 110 calls at 09:00-09:30: 100 expected.
    counts = {}
    for w, n in zip(history_days(date(2026, 12, 7), 3), (90, 100, 110), strict=True):
        row = [0] * INTERVALS
        row[18] = n
        counts[w] = row
    day = day_forecast(counts, 180.0, 0.8, 20, signed_in={18: 13})
    nine = day[18]
    assert (nine.start, nine.expected_calls, nine.agents_needed) == ("09:00", 100.0, 14)
    assert nine.forecast_sl == pytest.approx(0.796, abs=0.001)  # with the 13 signed in
    assert day[17].agents_needed == 0 and day[17].signed_in is None


def test_the_15_second_target_against_the_closed_form() -> None:
    # Erlang C written out (not the recursion the module uses): P(wait) for N=14, A=10.
    a, n = 10.0, 14
    top = a**n / math.factorial(n) * n / (n - a)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(n)) + top)
    assert erlang_c(n, a) == pytest.approx(p_wait)
    sl14 = 1 - p_wait * math.exp(-(n - a) * 15 / 180)
    assert sl14 >= 0.8
    assert agents_for(100, 180.0, 0.8, 15) == 14
