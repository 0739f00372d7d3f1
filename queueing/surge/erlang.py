"""Erlang C (M/M/N, callers wait, nobody abandons): the classic staffing model of contact
centers. Pure functions, no I/O; the surge detector and the benchmark both use them.

Notation: ``traffic`` A in Erlangs = arrival rate x mean handle time; ``agents`` N.

    P(wait)       C(N, A) = N·B(N, A) / (N − A·(1 − B(N, A)))     (B: Erlang B, by recursion)
    service level SL(t)   = 1 − C(N, A) · exp(−(N − A) · t / AHT)
    mean wait     ASA     = C(N, A) · AHT / (N − A)

Reference values (checked in tests/unit/test_erlang.py): A = 10 Erlangs, N = 11 → P(wait) ≈ 0.682;
the worked example of Call Centre Helper's "Erlang C formula – made simple" (100 calls in
30 min, AHT 180 s, 80 % in 20 s: A = 10) gives 13 agents → SL 79.6 %, 14 agents → SL 88.8 %,
ASA 7.8 s, so 14 agents; Erlang B(10, 10) ≈ 0.215 (standard Erlang B tables); M/M/2 at
A = 1 waits with probability exactly 1/3.
"""

from __future__ import annotations

import math


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of N servers offered A Erlangs (stable recursion)."""
    if agents < 0 or traffic < 0:
        raise ValueError("agents and traffic must not be negative")
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller waits (1.0 when the queue is unstable: N <= A)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    return agents * b / (agents - traffic * (1 - b))


def service_level(agents: int, traffic: float, aht_s: float, target_s: float) -> float:
    """Share of callers answered within ``target_s``."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * target_s / aht_s)


def mean_wait(agents: int, traffic: float, aht_s: float) -> float:
    """Average speed of answer in seconds (infinite when unstable)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * aht_s / (agents - traffic)


def agents_needed(rate_per_s: float, aht_s: float, target_sl: float, target_s: float,
                  *, max_agents: int = 10_000) -> int:
    """The fewest agents meeting ``target_sl`` within ``target_s`` for this load (0 without
    calls)."""
    if not 0 < target_sl < 1:
        raise ValueError("target_sl must be between 0 and 1")
    traffic = rate_per_s * aht_s
    if traffic <= 0:
        return 0
    n = max(1, math.floor(traffic) + 1)
    while n <= max_agents:
        if service_level(n, traffic, aht_s, target_s) >= target_sl:
            return n
        n += 1
    return max_agents
