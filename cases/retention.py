"""The case record's share of retention and key rotation.

- Personal fields of cases older than ``[privacy] case_personal_retention_days`` (0: kept):
  the caller's number, look-up hash and masked number, the caller's leg party and any
  caller field on the timeline are blanked. The other features' personal data on those cases
  (recordings, transcripts, what the agent wrote, callback notes) goes in the same
  transaction, through the ``CaseDataEraser`` each of them gives. What is left is anonymous:
  times, queue, agent, outcome, category, department — the statistics.
- The timeline notes every purge (``add_timeline_note``), whichever feature deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.models import CallerProfile, CallEvent, CallLeg, Case
from common.privacy import PersonalData
from common.rekey import RekeyTable
from common.retention import BATCH, AuditTrail, PurgeReport

# Timeline fields that name or quote the caller (note_enc: a callback attempt's note,
# encrypted but still the caller's words, and readable while the key is).
CALLER_FIELDS = frozenset({"caller", "caller_name", "note", "note_enc"})


class CaseDataEraser(Protocol):
    """Another feature's personal data on these cases, deleted in the caller's transaction."""

    async def forget(self, session: AsyncSession, case_ids: list[int], now: datetime,
                     why: dict[str, Any]) -> PurgeReport: ...


def add_timeline_note(session: AsyncSession, case_id: int, kind: str, now: datetime,
                      detail: dict[str, Any], *, key: str | None = None) -> None:
    """A retention fact on the case's timeline (``key``: the fact's key prefix)."""
    session.add(CallEvent(case_id=case_id, key=f"{key or kind}:{now.isoformat()}", kind=kind,
                          at=now, detail=detail, source="retention"))


async def case_numbers(session: AsyncSession, case_ids: list[int]) -> dict[int, str]:
    """Case id -> case number (the audit log names cases by number)."""
    if not case_ids:
        return {}
    rows = (await session.execute(select(Case.id, Case.number).where(
        Case.id.in_(case_ids)))).all()
    return {i: n for i, n in rows}


class CasePersonalPurger:
    """Blanks the personal fields of old, ended cases, one transaction per batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail,
                 erasers: Sequence[CaseDataEraser], *, retention_days: int):
        self.sessions = sessions
        self.audit = audit
        self.erasers = list(erasers)
        self.retention_days = retention_days

    async def purge(self, now: datetime, *, dry_run: bool) -> PurgeReport:
        out = PurgeReport(dry_run=dry_run)
        if not self.retention_days:
            return out
        cutoff = now - timedelta(days=self.retention_days)
        where = (Case.personal_purged_at.is_(None), Case.created_at < cutoff,
                 Case.call_state == "ended")
        if dry_run:
            async with self.sessions() as s:
                out.cases = int((await s.execute(
                    select(func.count()).select_from(Case).where(*where))).scalar_one())
            return out
        why = {"retention_days": self.retention_days}
        while True:
            async with self.sessions() as s, s.begin():
                cases = list((await s.execute(select(Case).where(*where).order_by(Case.id)
                                              .limit(BATCH))).scalars().all())
                if not cases:
                    return out
                ids = [c.id for c in cases]
                for eraser in self.erasers:
                    out.add(await eraser.forget(s, ids, now, why))
                await self._blank(s, cases, now, why)
            out.cases += len(cases)

    async def _blank(self, s: AsyncSession, cases: list[Case], now: datetime,
                     why: dict[str, Any]) -> None:
        ids = [c.id for c in cases]
        for leg in (await s.execute(select(CallLeg).where(
                CallLeg.case_id.in_(ids), CallLeg.role == "caller"))).scalars().all():
            leg.party = None
        for ev in (await s.execute(select(CallEvent).where(
                CallEvent.case_id.in_(ids)))).scalars().all():
            if ev.detail and (CALLER_FIELDS & set(ev.detail)):
                ev.detail = {k: v for k, v in ev.detail.items() if k not in CALLER_FIELDS}
        for c in cases:
            c.caller_enc = c.caller_hash = c.caller_masked = None
            c.personal_purged_at = now
            add_timeline_note(s, c.id, "personal_data_deleted", now, why,
                              key="personal_deleted")
            self.audit.add(s, "retention.personal", c.number, why)


def rekey_tables(pd: PersonalData) -> list[RekeyTable]:
    """The case record's encrypted fields and callers' hashes, under the current key."""
    re = pd.reencrypt

    def case(c: Case) -> bool:
        number = pd.decrypt(c.caller_enc)
        c.caller_enc = re(c.caller_enc)
        if number:
            c.caller_hash = pd.lookup_hash(number)
        return True

    def profile(p: CallerProfile) -> bool:
        number = pd.decrypt(p.caller_enc)
        p.caller_enc = re(p.caller_enc) or p.caller_enc
        p.caller_hash = pd.lookup_hash(number) or p.caller_hash
        return True

    def event(e: CallEvent) -> bool:
        # Callback notes quoted on the timeline.
        if not e.detail or "note_enc" not in e.detail:
            return False
        e.detail = {**e.detail, "note_enc": re(e.detail["note_enc"])}
        return True

    return [RekeyTable("cases", Case, case, Case.caller_enc.is_not(None)),
            RekeyTable("caller_profiles", CallerProfile, profile),
            RekeyTable("call_events", CallEvent, event, CallEvent.kind.like("callback%"))]
