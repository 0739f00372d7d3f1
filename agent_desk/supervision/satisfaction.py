"""Today's 一键评价 figures (满意率) per city and per queue, from the case records (the
``rating`` each answered call's case keeps, telephony/calls/rating.py), not from the live
projection: a restarted console shows the same figures.

满意率 = (满意 + 基本满意) / calls rated (a key 1-3); 参评率 = calls rated / calls answered
(``none``: answered and not rated)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.models import Case

RATED = ("satisfied", "basic", "unsatisfied")


def figure(counts: dict[str, int]) -> dict[str, Any]:
    """Counts of one city or queue (rating -> calls) as the wallboard shows them."""
    rated = sum(counts.get(r, 0) for r in RATED)
    answered = rated + counts.get("none", 0)
    good = counts.get("satisfied", 0) + counts.get("basic", 0)
    return {**{r: counts.get(r, 0) for r in (*RATED, "none")}, "rated": rated,
            "answered": answered,
            "satisfaction_rate": round(good / rated, 4) if rated else None,
            "rated_share": round(rated / answered, 4) if answered else None}


def figures(rows: Iterable[tuple[str | None, str | None, str, int]]) -> dict[str, Any]:
    """Rows of (city, queue, rating, calls) → figures per city and per queue."""
    cities: dict[str, dict[str, int]] = {}
    queues: dict[str, dict[str, int]] = {}
    for city, queue, rating, n in rows:
        for key, table in ((city, cities), (queue, queues)):
            if key:
                counts = table.setdefault(key, {})
                counts[rating] = counts.get(rating, 0) + n
    return {"cities": {c: figure(v) for c, v in cities.items()},
            "queues": {q: figure(v) for q, v in queues.items()}}


async def today(sessions: async_sessionmaker[AsyncSession], tz: tzinfo,
                now: datetime | None = None) -> dict[str, Any]:
    """The figures of the cases that arrived since local midnight."""
    day = (now or datetime.now(tz)).astimezone(tz).date()
    start = datetime.combine(day, time(), tz)
    async with sessions() as s:
        rows = (await s.execute(
            select(Case.city, Case.queue, Case.rating, func.count(Case.id))
            .where(Case.created_at >= start, Case.rating.is_not(None))
            .group_by(Case.city, Case.queue, Case.rating))).all()
    return {"day": day.isoformat(),
            **figures((c, q, str(r), int(n)) for c, q, r, n in rows)}
