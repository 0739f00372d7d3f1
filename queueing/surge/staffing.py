"""The staffing forecast of a city's day from its history (queueing/surge/forecast.py on
queueing/surge/history.py): what the wallboard, the export and the surge rebalancer read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, tzinfo

from common.config import Config
from queueing.surge.forecast import Interval, day_forecast, history_days, interval_of
from queueing.surge.history import CallHistory


class Staffing:
    def __init__(self, cfg: Config, history: CallHistory, tz: tzinfo, *,
                 clock: Callable[[], datetime] | None = None):
        self.cfg = cfg
        self.history = history
        self.tz = tz
        self.clock = clock or (lambda: datetime.now(tz))
        self._cache: dict[tuple[str, date], tuple[float, list[Interval]]] = {}

    async def handle_time(self, city: str, days: list[date]) -> float:
        """Talk plus the timed wrap-up; the configured handle time until calls were seen."""
        talk, n = await self.history.mean_talk(city, days)
        if n < self.cfg.surge.min_samples:
            return self.cfg.surge.default_aht_s
        return talk + self.cfg.web.wrapup_after_call_s

    async def day(self, city: str, day: date, signed_in: dict[int, int] | None = None
                  ) -> tuple[float, list[Interval]]:
        """(handle time, the 48 half-hours) of ``city`` on ``day``."""
        days = history_days(day, self.cfg.surge.forecast_weeks)
        counts = await self.history.counts(city, days)
        aht = await self.handle_time(city, days)
        s = self.cfg.surge
        return aht, day_forecast(counts, aht, s.target_sl, s.target_s, signed_in)

    async def needed_now(self, city: str) -> int:
        """Agents the city's forecast needs in the current half-hour (the history of a day
        read once per day and city)."""
        now = self.clock()
        today = now.astimezone(self.tz).date()
        cached = self._cache.get((city, today))
        if cached is None:
            cached = self._cache[(city, today)] = await self.day(city, today)
            for key in [k for k in self._cache if k[1] != today]:
                del self._cache[key]
        return cached[1][interval_of(now, self.tz)].agents_needed
