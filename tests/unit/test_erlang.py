"""Erlang C against published reference values (see queueing/surge/erlang.py for the sources)."""

from __future__ import annotations

import math

import pytest

from queueing.surge.erlang import agents_needed, erlang_b, erlang_c, mean_wait, service_level


def test_reference_p_wait_a10_n11() -> None:
    assert erlang_c(11, 10.0) == pytest.approx(0.682, abs=0.001)


def test_call_centre_helper_worked_example() -> None:
    # 100 calls in 30 minutes, 3-minute handle time, target 80 % answered in 20 s.
    rate, aht = 100 / 1800, 180.0
    traffic = rate * aht
    assert traffic == pytest.approx(10.0)
    assert service_level(13, traffic, aht, 20) == pytest.approx(0.796, abs=0.001)
    assert service_level(14, traffic, aht, 20) == pytest.approx(0.888, abs=0.001)
    assert mean_wait(14, traffic, aht) == pytest.approx(7.8, abs=0.05)
    assert agents_needed(rate, aht, 0.8, 20) == 14


def test_small_exact_values() -> None:
    assert erlang_b(10, 10.0) == pytest.approx(0.2146, abs=0.0001)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = utilisation


def test_edges() -> None:
    assert erlang_c(5, 0.0) == 0.0
    assert erlang_c(3, 3.0) == 1.0 and service_level(3, 3.0, 60, 15) == 0.0
    assert mean_wait(3, 4.0, 60) == math.inf
    assert agents_needed(0.0, 120, 0.8, 15) == 0
    # More load never needs fewer agents.
    prev = 0
    for calls_per_min in range(1, 40):
        n = agents_needed(calls_per_min / 60, 150, 0.8, 15)
        assert n >= prev
        prev = n
    with pytest.raises(ValueError):
        agents_needed(1, 1, 1.5, 15)
