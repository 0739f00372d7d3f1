"""Recordings and transcripts destroyed when due, and re-encrypted at a key rotation.

- Recordings older than ``[recording] retention_days``: the files are deleted, the rows keep
  ``deleted_at`` (the console answers 404 for them).
- Transcripts of cases older than ``[privacy] transcript_retention_days``: the segments are
  deleted, the transcript's status becomes ``purged``.
- A case whose personal fields are blanked loses both at once (``AsrCaseEraser``).

Each purge writes a fact on the case's timeline and, except inside the case purge (which
writes its own), an entry in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asr.models import Recording, Transcript, TranscriptSegment
from cases.models import Case
from cases.retention import add_timeline_note, case_numbers
from common.privacy import PersonalData
from common.rekey import RekeyTable
from common.retention import BATCH, AuditTrail, PurgeReport


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            Path(p).unlink()


async def _delete_recordings(s: AsyncSession, recs: list[Recording], now: datetime,
                             why: dict[str, Any], audit: AuditTrail | None) -> None:
    # Files first: if the commit fails they are gone and the next run marks the rows
    # (a missing file is not an error).
    await asyncio.to_thread(_unlink_all, [r.path for r in recs])
    by_case: dict[int, list[str]] = {}
    for r in recs:
        r.deleted_at = now
        by_case.setdefault(r.case_id, []).append(r.url_name)
    numbers = await case_numbers(s, list(by_case))
    for case_id, names in by_case.items():
        add_timeline_note(s, case_id, "recordings_deleted", now, {"files": names, **why})
        if audit is not None:
            audit.add(s, "retention.recordings", numbers.get(case_id),
                      {"files": len(names), **why})


async def _empty_transcript(s: AsyncSession, t: Transcript, now: datetime) -> int:
    """Delete a transcript's segments and mark it purged; returns how many segments."""
    n = int((await s.execute(select(func.count()).select_from(TranscriptSegment).where(
        TranscriptSegment.transcript_id == t.id))).scalar_one())
    await s.execute(delete(TranscriptSegment).where(TranscriptSegment.transcript_id == t.id))
    t.status, t.error, t.updated_at = "purged", None, now
    return n


class RecordingsPurger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, *,
                 retention_days: int):
        self.sessions = sessions
        self.audit = audit
        self.retention_days = retention_days

    async def purge(self, now: datetime, *, dry_run: bool) -> PurgeReport:
        cutoff = now - timedelta(days=self.retention_days)
        out = PurgeReport(dry_run=dry_run)
        where = (Recording.deleted_at.is_(None), Recording.created_at < cutoff)
        if dry_run:
            async with self.sessions() as s:
                out.recordings = int((await s.execute(
                    select(func.count()).select_from(Recording).where(*where))).scalar_one())
            return out
        why = {"retention_days": self.retention_days}
        while True:
            async with self.sessions() as s, s.begin():
                recs = list((await s.execute(select(Recording).where(*where)
                                             .order_by(Recording.id).limit(BATCH))
                             ).scalars().all())
                if not recs:
                    return out
                await _delete_recordings(s, recs, now, why, self.audit)
            out.recordings += len(recs)


class TranscriptsPurger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], audit: AuditTrail, *,
                 retention_days: int):
        self.sessions = sessions
        self.audit = audit
        self.retention_days = retention_days

    async def purge(self, now: datetime, *, dry_run: bool) -> PurgeReport:
        cutoff = now - timedelta(days=self.retention_days)
        out = PurgeReport(dry_run=dry_run)
        q = (select(Transcript).join(Case, Case.id == Transcript.case_id)
             .where(Transcript.status != "purged", Case.created_at < cutoff))
        if dry_run:
            async with self.sessions() as s:
                out.transcripts = int((await s.execute(
                    select(func.count()).select_from(q.subquery()))).scalar_one())
            return out
        while True:
            async with self.sessions() as s, s.begin():
                ts = list((await s.execute(q.order_by(Transcript.id).limit(BATCH))
                           ).scalars().all())
                if not ts:
                    return out
                numbers = await case_numbers(s, [t.case_id for t in ts])
                for t in ts:
                    n = await _empty_transcript(s, t, now)
                    out.segments += n
                    why = {"segments": n, "retention_days": self.retention_days}
                    add_timeline_note(s, t.case_id, "transcript_deleted", now, why)
                    self.audit.add(s, "retention.transcript", numbers.get(t.case_id), why)
            out.transcripts += len(ts)


class AsrCaseEraser:
    """The recordings and transcript of cases whose personal fields are blanked
    (cases.retention.CaseDataEraser): the case purge writes the audit entry."""

    async def forget(self, session: AsyncSession, case_ids: list[int], now: datetime,
                     why: dict[str, Any]) -> PurgeReport:
        out = PurgeReport()
        recs = list((await session.execute(select(Recording).where(
            Recording.case_id.in_(case_ids), Recording.deleted_at.is_(None)))
        ).scalars().all())
        if recs:
            await _delete_recordings(session, recs, now, why, None)
            out.recordings += len(recs)
        for t in (await session.execute(select(Transcript).where(
                Transcript.case_id.in_(case_ids), Transcript.status != "purged"))
                  ).scalars().all():
            out.segments += await _empty_transcript(session, t, now)
            out.transcripts += 1
        return out


def rekey_tables(pd: PersonalData) -> list[RekeyTable]:
    """What was said on calls, under the current key."""
    def segment(g: TranscriptSegment) -> bool:
        g.text_enc = pd.reencrypt(g.text_enc)
        return True

    return [RekeyTable("transcript_segments", TranscriptSegment, segment)]
