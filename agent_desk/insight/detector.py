"""Hot topics: is this window's count of new cases improbably high for its series, and which
burst does it belong to. Pure functions, no I/O (unit-tested directly).

A *series* is what is counted: the cases of one 事项 in one district ("matter"), or the cases
of a city whose text holds one word ("keyword"). Its *baseline* is the same window on the
same weekday of the previous weeks. ``decide`` asks how improbable the window's count is if
the series' Poisson rate is what it was in those weeks: the exact conditional test of two
Poisson counts (given the total of today's count X and the k weeks' total S, X is binomial
with n = X + S and p = 1/(k+1)), which also weighs how little a few weeks say about a rare
series; a series with no earlier week (a new service) is tested against a Poisson law of mean
``min_expected``. *Hot*: tail probability at most ``p_alert`` with at least ``min_count``
cases; *warm* while it stays at most ``p_clear``.

``plan`` turns a pass's verdicts into alerts, one per burst: a hot series already in an open
alert stays with it; a hot series that is mostly an open alert's cases, or would not be hot
without them, joins it (the words of a burst of 停水 cases are the same burst, not alerts of
their own); any other hot series opens a new alert. An alert none of whose series is warm
any more subsides after ``cooldown``; a later burst of the same series is a new alert.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MATTER, KEYWORD = "matter", "keyword"


@dataclass(frozen=True)
class Rule:
    p_alert: float = 1e-4
    p_clear: float = 0.05
    min_count: int = 5
    min_expected: float = 1.0
    overlap_share: float = 0.5
    cooldown: timedelta = timedelta(minutes=30)


def poisson_tail(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam), accurate in the far tail (log-space terms)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    log_pmf = -lam + k * math.log(lam) - math.lgamma(k + 1)
    if k > lam:
        # Terms fall from k on: sum them until they no longer count.
        term, total, i = math.exp(log_pmf), 0.0, k
        while term > total * 1e-17 and i < k + 10_000:
            total += term
            i += 1
            term *= lam / i
        return min(1.0, total)
    # The tail is large: one minus the terms below k.
    term, below = math.exp(-lam), 0.0
    for i in range(k):
        below += term
        term *= lam / (i + 1)
    return max(0.0, 1.0 - below)


def binomial_tail(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summing from x the way the terms fall."""
    if x <= 0:
        return 1.0
    if x > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    q, lp, lq = 1 - p, math.log(p), math.log(1 - p)

    def pmf(i: int) -> float:
        return math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * lp + (n - i) * lq)

    if x > n * p:
        term, total, i = pmf(x), 0.0, x
        while i <= n and term > total * 1e-17:
            total += term
            term *= (n - i) / (i + 1) * p / q
            i += 1
        return min(1.0, total)
    # The tail is large: one minus the terms below x, summed downwards from x - 1.
    i = x - 1
    term, below = pmf(i), 0.0
    while i >= 0 and term > below * 1e-17:
        below += term
        term *= i / (n - i + 1) * q / p
        i -= 1
    return max(0.0, 1.0 - below)


@dataclass(frozen=True)
class Verdict:
    observed: int
    expected: float
    p: float
    hot: bool
    warm: bool
    baseline: tuple[int, ...] = ()


def decide(observed: int, baseline: Sequence[int], rule: Rule) -> Verdict:
    """The window's count ``observed`` against the counts of the same window on earlier
    same weekdays (``baseline``: one count per week the service already ran; none, a series
    of a new service, is expected at ``min_expected``)."""
    if baseline:
        weeks, total = len(baseline), sum(baseline)
        expected = total / weeks
        p = binomial_tail(observed, observed + total, 1 / (weeks + 1))
    else:
        expected = rule.min_expected
        p = poisson_tail(observed, expected)
    hot = observed >= rule.min_count and p <= rule.p_alert
    warm = hot or (observed >= rule.min_count and p <= rule.p_clear)
    return Verdict(observed, expected, p, hot, warm, tuple(baseline))


@dataclass(frozen=True)
class Signal:
    """One series' verdict in this pass, with the cases in its window."""

    kind: str  # MATTER | KEYWORD
    key: str  # the series: "matter|<city>|<district>|<matter>", "keyword|<city>|<hash>"
    verdict: Verdict
    cases: frozenset[int]
    city: str | None = None
    district: str | None = None
    matter: str | None = None
    term: str | None = None  # the keyword's hash (its word is found for the alert only)


@dataclass
class OpenAlert:
    id: int
    keys: set[str]
    cases: set[int]
    last_warm_at: datetime


@dataclass
class Burst:
    """An alert as this pass leaves it: an open one (``id``) or a new one (``id`` None)."""

    id: int | None
    signals: list[Signal] = field(default_factory=list)
    cases: set[int] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    added: set[int] = field(default_factory=set)  # cases new to the alert in this pass

    @property
    def lead(self) -> Signal:
        return self.signals[0]


@dataclass
class Plan:
    bursts: list[Burst]  # open alerts with a warm series, and new alerts
    close: list[int]  # alerts that subsided
    quiet: list[int]  # open alerts cooling down (no warm series, not yet subsided)


def _explains(burst: Burst, s: Signal, rule: Rule) -> bool:
    """The burst explains the signal: its cases are (``overlap_share`` of) the signal's, or
    without them the signal would not be hot (a common word lifted by the burst)."""
    common = len(s.cases & burst.cases)
    if common == 0:
        return False
    if common >= rule.overlap_share * len(s.cases):
        return True
    return not decide(len(s.cases) - common, s.verdict.baseline, rule).hot


def plan(signals: Sequence[Signal], alerts: Sequence[OpenAlert], now: datetime, rule: Rule
         ) -> Plan:
    """Which alert each warm series belongs to, which alerts open and which subside."""
    bursts: dict[int, Burst] = {}
    new: list[Burst] = []
    by_key = {k: a for a in alerts for k in a.keys}
    # The 事项 series first (they name the burst best), then the most improbable.
    order = sorted((s for s in signals if s.verdict.warm),
                   key=lambda s: (s.kind != MATTER, s.verdict.p, s.key))

    def join(b: Burst, s: Signal, known: set[int]) -> None:
        b.signals.append(s)
        b.keys.add(s.key)
        b.added |= s.cases - known - b.cases
        b.cases |= s.cases

    for s in order:
        a = by_key.get(s.key)
        if a is not None:
            b = bursts.setdefault(a.id, Burst(a.id, cases=set(a.cases), keys=set(a.keys)))
            join(b, s, a.cases)
            continue
        if not s.verdict.hot:
            continue  # warm alone keeps a burst going; it does not start one
        target: Burst | None = None
        for a in alerts:
            if _explains(Burst(a.id, cases=a.cases), s, rule):
                target = bursts.setdefault(a.id, Burst(a.id, cases=set(a.cases),
                                                       keys=set(a.keys)))
                break
        if target is None:
            target = next((b for b in new if _explains(b, s, rule)), None)
        if target is None:
            target = Burst(None)
            new.append(target)
        known = next((a.cases for a in alerts if a.id == target.id), set())
        join(target, s, known)
    close: list[int] = []
    quiet: list[int] = []
    for a in alerts:
        if a.id in bursts:
            continue
        (close if now - a.last_warm_at >= rule.cooldown else quiet).append(a.id)
    return Plan([*bursts.values(), *new], close, quiet)
