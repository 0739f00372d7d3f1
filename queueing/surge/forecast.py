"""The staffing forecast (排班预测), pure: per city and half-hour, the calls expected from
the same weekday and interval of the last weeks, and the agents Erlang C needs for them.

The expected calls of an interval are the mean of its counts on the same weekday of the
last ``weeks`` weeks (weeks before the history began are left out, not counted as zero);
the agents needed are the fewest meeting the service-level target (e.g. 80 % in 15 s) at
that arrival rate and the handle time (talk plus wrap-up). The wallboard, the export and
the surge rebalancer (donors keep the agents their forecast needs) use this one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from queueing.surge.erlang import agents_needed, service_level

INTERVAL_S = 1800  # half an hour
INTERVALS = 24 * 3600 // INTERVAL_S


@dataclass(frozen=True)
class Interval:
    index: int  # 0 = 00:00-00:30
    start: str  # "08:30"
    expected_calls: float
    agents_needed: int
    forecast_sl: float | None = None  # with the agents signed in
    signed_in: int | None = None


def interval_of(at: datetime, tz: tzinfo) -> int:
    local = at.astimezone(tz)
    return (local.hour * 3600 + local.minute * 60 + local.second) // INTERVAL_S


def interval_start(index: int) -> str:
    minutes = index * INTERVAL_S // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def interval_bounds(day: date, index: int, tz: tzinfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tz) + timedelta(seconds=index * INTERVAL_S)
    return start, start + timedelta(seconds=INTERVAL_S)


def history_days(day: date, weeks: int) -> list[date]:
    """The same weekday of the ``weeks`` weeks before ``day``."""
    return [day - timedelta(days=7 * w) for w in range(1, weeks + 1)]


def expected(counts: list[int]) -> float:
    """The mean of an interval's counts over the weeks that have history."""
    return sum(counts) / len(counts) if counts else 0.0


def agents_for(calls: float, aht_s: float, target_sl: float, target_s: float) -> int:
    """Agents Erlang C needs for ``calls`` in half an hour at ``aht_s`` per call."""
    return agents_needed(calls / INTERVAL_S, aht_s, target_sl, target_s)


def day_forecast(counts: dict[date, list[int]], aht_s: float, target_sl: float,
                 target_s: float, signed_in: dict[int, int] | None = None
                 ) -> list[Interval]:
    """A day's intervals from the history: ``counts`` maps each history day to its 48
    interval counts; ``signed_in`` the agents signed in per interval (where known)."""
    out = []
    for i in range(INTERVALS):
        calls = expected([c[i] for c in counts.values()])
        need = agents_for(calls, aht_s, target_sl, target_s)
        n = None if signed_in is None else signed_in.get(i)
        sl = None
        if n is not None:
            sl = round(service_level(n, calls / INTERVAL_S * aht_s, aht_s, target_s), 4)
        out.append(Interval(i, interval_start(i), round(calls, 2), need, sl, n))
    return out
