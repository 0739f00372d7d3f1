"""The audit of surge moves (多援一): every agent lent to another city and every return, with
who, when, why and the queue's figures before and after. Rows are only ever added."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()

surge_moves = Table(
    "surge_moves", metadata,
    Column("id", Integer, primary_key=True),
    Column("move_id", String(32), nullable=False, index=True),
    Column("action", String(16), nullable=False),  # borrow | return | cleanup
    Column("agent", String(16), nullable=False, index=True),
    Column("from_city", String(32), nullable=False),
    Column("to_city", String(32), nullable=False),
    Column("queue", String(64), nullable=False),
    Column("by", String(64), nullable=False),  # a supervisor, or "auto"
    Column("reason", Text, nullable=False),
    Column("proposal_id", String(32), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
)


class SurgeAudit:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def record(self, *, move_id: str, action: str, agent: str, from_city: str,
                     to_city: str, queue: str, by: str, reason: str,
                     proposal_id: str | None, at: float, before: dict[str, Any] | None,
                     after: dict[str, Any] | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(surge_moves.insert().values(
                move_id=move_id, action=action, agent=agent, from_city=from_city,
                to_city=to_city, queue=queue, by=by, reason=reason, proposal_id=proposal_id,
                at=datetime.fromtimestamp(at, UTC), before=before, after=after))

    async def latest(self, limit: int = 50) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(surge_moves).order_by(
                surge_moves.c.id.desc()).limit(limit))).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            at = d["at"]
            if at.tzinfo is None:
                at = at.replace(tzinfo=UTC)
            d["at"] = at.isoformat()
            out.append(d)
        return out
