"""The facts the agent figures are computed from, read from the database, and the presence
changes written as facts (``AgentStateLog``). Nothing here reads the live state: a
restarted service, a report of last month and the wallboard give the same figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.figures.compute import (
    AnsweredLeg,
    Figures,
    MissedRing,
    QaMark,
    StateChange,
    TransferMade,
    agent_figures,
    presence_time,
    rolled_up,
)
from agent_desk.models import AgentStateEvent, QaSample, QaScore
from cases.models import CallLeg, Case, TransferRecord

KINDS = ("signed_in", "signed_out", "paused", "ready")
# How far before a period its agents' last presence change is looked for: an agent signed in
# longer than this before the period counts from their next change.
LOOKBACK = timedelta(days=7)


class AgentStateLog:
    """Agents' presence changes as facts with natural keys (agent, change, instant in ms)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def record(self, agent: str, kind: str, reason: str = "", *, by: str,
                     at: float | None = None) -> bool:
        """Store one change (a repeat of the same change is stored once); True if new."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        epoch = time.time() if at is None else at
        key = f"{agent}:{kind}:{int(epoch * 1000)}"
        async with self.sessions() as s, s.begin():
            dialect = s.bind.dialect.name if s.bind else "sqlite"
            ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
                AgentStateEvent)
            stmt = ins.values(key=key, agent_id=agent, kind=kind, reason=reason[:32],
                              at=datetime.fromtimestamp(epoch, UTC), by=by[:64]
                              ).on_conflict_do_nothing(index_elements=["key"])
            result: Any = await s.execute(stmt)
            return bool(result.rowcount)

    async def last(self) -> dict[str, tuple[str, str]]:
        """Each agent's latest change: (kind, reason)."""
        async with self.sessions() as s:
            latest = (select(AgentStateEvent.agent_id, func.max(AgentStateEvent.id).label("id"))
                      .group_by(AgentStateEvent.agent_id).subquery())
            rows = (await s.execute(
                select(AgentStateEvent.agent_id, AgentStateEvent.kind, AgentStateEvent.reason)
                .join(latest, AgentStateEvent.id == latest.c.id))).all()
        return {a: (k, r) for a, k, r in rows}


@dataclass(frozen=True)
class Facts:
    answered: list[AnsweredLeg]
    missed: list[MissedRing]
    transfers: list[TransferMade]
    changes: list[StateChange]
    scores: list[QaMark]


class FiguresStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def facts(self, start: datetime, end: datetime) -> Facts:
        """Every fact the figures of [start, end) count."""
        async with self.sessions() as s:
            legs = (await s.execute(
                select(CallLeg.party, CallLeg.answered_at, CallLeg.ended_at, Case.ended_at,
                       Case.talk_seconds, Case.rating)
                .join(Case, Case.id == CallLeg.case_id)
                .where(CallLeg.role == "agent", CallLeg.answered_at >= start,
                       CallLeg.answered_at < end, CallLeg.party.is_not(None)))).all()
            rings = (await s.execute(
                select(CallLeg.party, CallLeg.started_at).where(
                    CallLeg.role == "agent", CallLeg.outcome == "no_answer",
                    CallLeg.started_at >= start, CallLeg.started_at < end,
                    CallLeg.party.is_not(None)))).all()
            transfers = (await s.execute(
                select(TransferRecord.initiator, TransferRecord.dialed_at, TransferRecord.kind)
                .where(TransferRecord.initiator.is_not(None),
                       TransferRecord.dialed_at >= start, TransferRecord.dialed_at < end))).all()
            changes = (await s.execute(
                select(AgentStateEvent.agent_id, AgentStateEvent.at, AgentStateEvent.kind,
                       AgentStateEvent.reason)
                .where(AgentStateEvent.at >= start - LOOKBACK, AgentStateEvent.at < end)
                .order_by(AgentStateEvent.at, AgentStateEvent.id))).all()
            # A score counts on the day of the call it scores, not the day it was given.
            scores = (await s.execute(
                select(QaScore.agent_id, Case.answered_at, QaScore.score)
                .join(QaSample, QaSample.id == QaScore.sample_id)
                .join(Case, Case.id == QaSample.case_id)
                .where(Case.answered_at >= start, Case.answered_at < end))).all()
        answered = []
        for party, answered_at, leg_end, call_end, talk, rating in legs:
            if answered_at is None:
                continue
            until = leg_end or call_end
            talk_s = ((until - answered_at).total_seconds() if until is not None
                      else float(talk or 0.0))
            answered.append(AnsweredLeg(str(party), answered_at, talk_s, rating))
        return Facts(
            answered=answered,
            missed=[MissedRing(str(a), at) for a, at in rings if at is not None],
            transfers=[TransferMade(str(a), at, k) for a, at, k in transfers if at is not None],
            changes=[StateChange(a, at, k, r or "") for a, at, k, r in changes],
            scores=[QaMark(a, at, float(sc)) for a, at, sc in scores if at is not None])

    async def per_agent(self, start: datetime, end: datetime) -> dict[str, Figures]:
        f = await self.facts(start, end)
        return agent_figures(start, end, answered=f.answered, missed=f.missed,
                             transfers=f.transfers, changes=f.changes, scores=f.scores)

    async def signed_in_per_interval(self, agents: Iterable[str],
                                     bounds: list[tuple[datetime, datetime]]) -> list[int]:
        """How many of these agents were signed in at some time in each interval."""
        wanted = set(agents)
        if not bounds:
            return []
        start, end = bounds[0][0], bounds[-1][1]
        async with self.sessions() as s:
            rows = (await s.execute(
                select(AgentStateEvent.agent_id, AgentStateEvent.at, AgentStateEvent.kind,
                       AgentStateEvent.reason)
                .where(and_(AgentStateEvent.at >= start - LOOKBACK, AgentStateEvent.at < end))
                .order_by(AgentStateEvent.at, AgentStateEvent.id))).all()
        changes = [StateChange(a, at, k, r or "") for a, at, k, r in rows if a in wanted]
        out = []
        for a, b in bounds:
            times = presence_time(changes, a, b)
            out.append(sum(1 for signed, _ in times.values() if signed > 0))
        return out


def grouped(per_agent: dict[str, Figures], by: str, group_of: Callable[[str], str]
            ) -> dict[str, Figures]:
    return per_agent if by == "agent" else rolled_up(per_agent, group_of)
