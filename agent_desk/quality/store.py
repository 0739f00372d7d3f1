"""Quality inspection (质检) in the database: the day's sample drawn once the day is over
(``decide()`` over the day's answered calls; stored once per case, so drawing again changes
nothing), the inspectors' scores against the configured checklist (each in the audit log,
written in the score's transaction), an agent's own scores."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.audit import Actor, Audit
from agent_desk.models import CaseForm, QaSample, QaScore
from agent_desk.quality.sample import CallSeen, Rules, decide
from cases.models import Case, TransferRecord
from common.config import QualitySection
from common.errors import DomainError


class QualityDesk:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], section: QualitySection,
                 tz: tzinfo, agent_names: dict[str, str] | None = None,
                 city_names: dict[str, str] | None = None):
        self.sessions = sessions
        self.section = section
        self.tz = tz
        self.names = agent_names or {}
        self.city_names = city_names or {}

    @property
    def rules(self) -> Rules:
        s = self.section
        return Rules(random_per_agent=s.random_per_agent, long_call_s=s.long_call_s,
                     max_by_rules=s.max_by_rules)

    def checklist(self) -> list[dict[str, Any]]:
        return [i.model_dump() for i in self.section.checklist]

    def today(self) -> date:
        return datetime.now(self.tz).date()

    # -- the sample ---------------------------------------------------------------------------

    async def calls_of(self, day: date) -> list[CallSeen]:
        start = datetime.combine(day, time(), self.tz)
        end = start + timedelta(days=1)
        emergency = exists().where(TransferRecord.case_id == Case.id,
                                   TransferRecord.kind == "emergency_line")
        async with self.sessions() as s:
            rows = (await s.execute(
                select(Case.id, Case.number, Case.agent_id, Case.talk_seconds, Case.rating,
                       CaseForm.category, emergency)
                .outerjoin(CaseForm, CaseForm.case_id == Case.id)
                .where(Case.answered_at >= start, Case.answered_at < end,
                       Case.agent_id.is_not(None), Case.call_state == "ended"))).all()
        return [CallSeen(cid, num, str(agent), float(talk or 0.0), rating, category,
                         bool(emerg))
                for cid, num, agent, talk, rating, category, emerg in rows]

    async def draw(self, day: date) -> int:
        """Store the day's sample (a day that is over); how many calls were new to it."""
        if day >= self.today():
            raise DomainError("invalid", f"date: {day} is not over yet; its sample is drawn "
                                         "the day after")
        picks = decide(day.isoformat(), await self.calls_of(day), self.rules)
        if not picks:
            return 0
        async with self.sessions() as s, s.begin():
            cities: dict[int, str | None] = {cid: city for cid, city in (await s.execute(
                select(Case.id, Case.city).where(Case.id.in_([p.case_id for p in picks]))
            )).all()}
            dialect = s.bind.dialect.name if s.bind else "sqlite"
            ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(QaSample)
            new = 0
            for p in picks:
                result: Any = await s.execute(ins.values(
                    case_id=p.case_id, agent_id=p.agent, city=cities.get(p.case_id),
                    day=day.isoformat(), reasons=list(p.reasons), drawn_at=datetime.now(self.tz)
                ).on_conflict_do_nothing(index_elements=["case_id"]))
                new += int(result.rowcount or 0)
        return new

    def _row(self, sample: QaSample, number: str, score: QaScore | None) -> dict[str, Any]:
        return {"id": sample.id, "case": number, "agent": sample.agent_id,
                "agent_name": self.names.get(sample.agent_id, sample.agent_id),
                "city": sample.city,
                "city_name": self.city_names.get(sample.city or "", sample.city),
                "day": sample.day, "reasons": list(sample.reasons),
                "score": None if score is None else self._score(score)}

    @staticmethod
    def _score(score: QaScore) -> dict[str, Any]:
        return {"score": score.score, "items": dict(score.items), "comment": score.comment,
                "by": score.scored_by, "at": score.scored_at.isoformat()}

    async def samples(self, day: date, *, city: str | None) -> list[dict[str, Any]]:
        """The day's sample (drawn now if it was not yet), within ``city`` (None: all)."""
        await self.draw(day)
        async with self.sessions() as s:
            q = (select(QaSample, Case.number, QaScore)
                 .join(Case, Case.id == QaSample.case_id)
                 .outerjoin(QaScore, QaScore.sample_id == QaSample.id)
                 .where(QaSample.day == day.isoformat())
                 .order_by(QaSample.agent_id, Case.number))
            if city is not None:
                q = q.where(QaSample.city == city)
            rows = (await s.execute(q)).all()
        return [self._row(sample, number, score) for sample, number, score in rows]

    async def sample(self, sample_id: int, *, city: str | None) -> dict[str, Any]:
        async with self.sessions() as s:
            row = (await s.execute(
                select(QaSample, Case.number, QaScore)
                .join(Case, Case.id == QaSample.case_id)
                .outerjoin(QaScore, QaScore.sample_id == QaSample.id)
                .where(QaSample.id == sample_id))).first()
        if row is None or (city is not None and row[0].city != city):
            raise DomainError("not_found", f"no sample {sample_id}")
        return {**self._row(row[0], row[1], row[2]), "checklist": self.checklist()}

    # -- scores -------------------------------------------------------------------------------

    def total(self, items: dict[str, int]) -> float:
        """The score in percent of the checklist's points; every item must be given."""
        checklist = {i.id: i.points for i in self.section.checklist}
        unknown = sorted(set(items) - set(checklist))
        if unknown:
            raise DomainError("invalid", f"items: unknown {', '.join(unknown)}")
        missing = sorted(set(checklist) - set(items))
        if missing:
            raise DomainError("invalid", f"items: missing {', '.join(missing)}")
        for k, v in items.items():
            if not 0 <= v <= checklist[k]:
                raise DomainError("invalid", f"items.{k}: 0 to {checklist[k]} points")
        return round(100.0 * sum(items.values()) / sum(checklist.values()), 1)

    async def score(self, sample_id: int, items: dict[str, int], comment: str, who: Actor,
                    *, city: str | None) -> dict[str, Any]:
        total = self.total(items)
        async with self.sessions() as s, s.begin():
            row = (await s.execute(
                select(QaSample, Case.number).join(Case, Case.id == QaSample.case_id)
                .where(QaSample.id == sample_id))).first()
            if row is None or (city is not None and row[0].city != city):
                raise DomainError("not_found", f"no sample {sample_id}")
            sample, number = row
            score = (await s.execute(select(QaScore).where(
                QaScore.sample_id == sample_id))).scalar_one_or_none()
            before = None if score is None else score.score
            if score is None:
                score = QaScore(sample_id=sample_id, agent_id=sample.agent_id)
                s.add(score)
            score.items, score.score, score.comment = dict(items), total, comment
            score.scored_by, score.scored_at = who.user, datetime.now(self.tz)
            Audit.add(s, who, "qa.score", number, {
                "sample": sample_id, "agent": sample.agent_id, "score": total,
                "before": before})
            await s.flush()
            out = self._row(sample, number, score)
        return out

    async def mine(self, agent: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """An agent's scored calls, newest first: the score, the items, the comment."""
        async with self.sessions() as s:
            rows = (await s.execute(
                select(QaSample, Case.number, QaScore)
                .join(Case, Case.id == QaSample.case_id)
                .join(QaScore, QaScore.sample_id == QaSample.id)
                .where(QaScore.agent_id == agent)
                .order_by(QaScore.scored_at.desc()).limit(limit))).all()
        return [self._row(sample, number, score) for sample, number, score in rows]
