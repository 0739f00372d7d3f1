"""The call history the staffing forecast reads: calls that arrived per city and half-hour
on given days, and their mean handle time, from the case records (cases/models.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.models import Case
from queueing.surge.forecast import INTERVALS, interval_of


class CallHistory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], tz: tzinfo):
        self.sessions = sessions
        self.tz = tz

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, time(), self.tz)
        return start, datetime.combine(day + timedelta(days=1), time(), self.tz)

    async def counts(self, city: str, days: list[date]) -> dict[date, list[int]]:
        """Calls per half-hour of each day that has any history (days without a single call
        of any city are left out: the history had not begun, or the service was down)."""
        out: dict[date, list[int]] = {}
        async with self.sessions() as s:
            for day in days:
                start, end = self._bounds(day)
                rows = (await s.execute(
                    select(Case.city, Case.arrived_at).where(
                        Case.arrived_at >= start, Case.arrived_at < end))).all()
                if not rows:
                    continue
                row = [0] * INTERVALS
                for c, at in rows:
                    if c == city and at is not None:
                        row[interval_of(at, self.tz)] += 1
                out[day] = row
        return out

    async def mean_talk(self, city: str, days: list[date]) -> tuple[float, int]:
        """The mean talk time of the answered calls of these days, and how many there were."""
        total, n = 0.0, 0
        async with self.sessions() as s:
            for day in days:
                start, end = self._bounds(day)
                got = (await s.execute(
                    select(func.sum(Case.talk_seconds), func.count(Case.id)).where(
                        Case.city == city, Case.arrived_at >= start, Case.arrived_at < end,
                        Case.talk_seconds.is_not(None)))).one()
                total += float(got[0] or 0.0)
                n += int(got[1] or 0)
        return (total / n if n else 0.0), n
