"""Personal data destroyed when due: the retention job.

- Recordings older than ``[recording] retention_days``: the files are deleted, the rows keep
  ``deleted_at`` (the console answers 404 for them).
- Transcripts of cases older than ``[privacy] transcript_retention_days``: the segments are
  deleted, the transcript's status becomes ``purged``.
- Asterisk's own call records (CEL, one SQLite file per node, callers' numbers in clear: Asterisk
  writes them) older than ``[privacy] cel_retention_days``, once the service has read them
  (below the node's checkpoint).
- Personal fields of cases older than ``[privacy] case_personal_retention_days`` (0: kept):
  the caller's number, name, look-up hash and masked number, what the agent wrote (subject,
  address, content), callback notes, the caller's leg party and any caller field on the
  timeline are blanked; the case's recordings and transcript go too. What is left is
  anonymous: times, queue, agent, outcome, category, department — the statistics.

Each purge is one transaction per batch of cases, and writes a fact on each case's timeline
and an entry in the audit log (user ``system``). The service runs it every
``[recording] purge_interval_s`` (asr/service.py); ``hotline privacy purge [--dry-run]`` runs
it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.audit import SYSTEM, Audit
from agent_desk.models import CallbackTask, CaseForm
from asr.models import Recording, Transcript, TranscriptSegment
from cases.models import CallEvent, CallLeg, Case
from common.config import Config
from common.privacy import PersonalData

log = logging.getLogger(__name__)

BATCH = 200


@dataclass
class PurgeReport:
    recordings: int = 0  # files deleted
    transcripts: int = 0  # transcripts emptied
    segments: int = 0
    cases: int = 0  # cases whose personal fields were blanked
    cel_rows: int = 0  # Asterisk CEL rows deleted
    dry_run: bool = False

    def add(self, other: PurgeReport) -> None:
        self.recordings += other.recordings
        self.transcripts += other.transcripts
        self.segments += other.segments
        self.cases += other.cases
        self.cel_rows += other.cel_rows

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unlink_all(paths: list[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            Path(p).unlink()


def _purge_cel(path: Path, before: float, up_to_id: int, dry_run: bool) -> int:
    import sqlite3

    if not path.exists():
        return 0
    conn = sqlite3.connect(str(path), timeout=10)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        where = "eventtime < ? AND AcctId <= ?"
        if dry_run:
            return int(conn.execute(f"SELECT count(*) FROM cel WHERE {where}",
                                    (before, up_to_id)).fetchone()[0])
        with conn:
            return conn.execute(f"DELETE FROM cel WHERE {where}", (before, up_to_id)).rowcount
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        raise
    finally:
        conn.close()


def default_cel_paths(cfg: Config) -> dict[str, Path]:
    from hotline.service import cel_path

    return {n.id: n.cel_path if n.cel_path else cel_path(cfg, n) for n in cfg.nodes}


class Retention:
    def __init__(self, cfg: Config, sessions: async_sessionmaker[AsyncSession],
                 personal: PersonalData | None = None,
                 cel_paths: dict[str, Path] | None = None):
        self.cfg = cfg
        self.sessions = sessions
        self.personal = personal
        self.cel_paths = default_cel_paths(cfg) if cel_paths is None else cel_paths
        self.runs = 0
        self.last: PurgeReport | None = None

    async def run(self, now: datetime | None = None, *, dry_run: bool = False) -> PurgeReport:
        now = now or datetime.now(UTC)
        report = PurgeReport(dry_run=dry_run)
        # Personal fields first: they take the case's recordings and transcript with them.
        report.add(await self.purge_personal(now, dry_run=dry_run))
        report.add(await self.purge_recordings(now, dry_run=dry_run))
        report.add(await self.purge_transcripts(now, dry_run=dry_run))
        report.add(await self.purge_cel(now, dry_run=dry_run))
        self.runs += 1
        self.last = report
        if not dry_run and (report.recordings or report.transcripts or report.cases):
            log.info("retention: personal data past its period deleted", extra={
                "recordings": report.recordings, "transcripts": report.transcripts,
                "cases": report.cases, "cel_rows": report.cel_rows})
        return report

    # -- Asterisk's CEL -----------------------------------------------------------------------

    async def purge_cel(self, now: datetime | None = None, *, dry_run: bool = False
                        ) -> PurgeReport:
        """CEL rows past their period, only those the service has read (its checkpoint):
        a call still being reconciled after an outage keeps its records."""
        from cases.models import NodeCheckpoint

        now = now or datetime.now(UTC)
        before = (now - timedelta(days=self.cfg.privacy.cel_retention_days)).timestamp()
        out = PurgeReport(dry_run=dry_run)
        async with self.sessions() as s:
            checkpoints = {r.node: r.cel_id for r in (
                await s.execute(select(NodeCheckpoint))).scalars()}
        for node, path in self.cel_paths.items():
            up_to = checkpoints.get(node, 0)
            if up_to:
                out.cel_rows += await asyncio.to_thread(_purge_cel, path, before, up_to,
                                                        dry_run)
        return out

    # -- recordings -------------------------------------------------------------------------

    async def purge_recordings(self, now: datetime | None = None, *, dry_run: bool = False
                               ) -> PurgeReport:
        now = now or datetime.now(UTC)
        days = self.cfg.recording.retention_days
        cutoff = now - timedelta(days=days)
        out = PurgeReport(dry_run=dry_run)
        where = (Recording.deleted_at.is_(None), Recording.created_at < cutoff)
        if dry_run:
            async with self.sessions() as s:
                out.recordings = int((await s.execute(
                    select(func.count()).select_from(Recording).where(*where))).scalar_one())
            return out
        while True:
            async with self.sessions() as s, s.begin():
                recs = list((await s.execute(select(Recording).where(*where)
                                             .order_by(Recording.id).limit(BATCH))
                             ).scalars().all())
                if not recs:
                    return out
                await self._delete_recordings(s, recs, now, {"retention_days": days},
                                              action="retention.recordings")
            out.recordings += len(recs)

    async def _delete_recordings(self, s: AsyncSession, recs: list[Recording], now: datetime,
                                 why: dict[str, Any], *, action: str | None) -> None:
        # Files first: if the commit fails they are gone and the next run marks the rows
        # (a missing file is not an error).
        await asyncio.to_thread(_unlink_all, [r.path for r in recs])
        by_case: dict[int, list[str]] = {}
        for r in recs:
            r.deleted_at = now
            by_case.setdefault(r.case_id, []).append(r.url_name)
        numbers = await self._numbers(s, list(by_case))
        for case_id, names in by_case.items():
            s.add(CallEvent(case_id=case_id, key=f"recordings_deleted:{now.isoformat()}",
                            kind="recordings_deleted", at=now,
                            detail={"files": names, **why}, source="retention"))
            if action:
                Audit.add(s, SYSTEM, action, numbers.get(case_id),
                          {"files": len(names), **why})

    @staticmethod
    async def _numbers(s: AsyncSession, case_ids: list[int]) -> dict[int, str]:
        if not case_ids:
            return {}
        rows = (await s.execute(select(Case.id, Case.number).where(Case.id.in_(case_ids)))
                ).all()
        return {i: n for i, n in rows}

    # -- transcripts ------------------------------------------------------------------------

    async def purge_transcripts(self, now: datetime | None = None, *, dry_run: bool = False
                                ) -> PurgeReport:
        now = now or datetime.now(UTC)
        days = self.cfg.privacy.transcript_retention_days
        cutoff = now - timedelta(days=days)
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
                numbers = await self._numbers(s, [t.case_id for t in ts])
                for t in ts:
                    n = await self._delete_transcript(s, t, now)
                    out.segments += n
                    why = {"segments": n, "retention_days": days}
                    s.add(CallEvent(case_id=t.case_id, key=f"transcript_deleted:{now.isoformat()}",
                                    kind="transcript_deleted", at=now, detail=why,
                                    source="retention"))
                    Audit.add(s, SYSTEM, "retention.transcript", numbers.get(t.case_id), why)
            out.transcripts += len(ts)

    @staticmethod
    async def _delete_transcript(s: AsyncSession, t: Transcript, now: datetime) -> int:
        n = int((await s.execute(select(func.count()).select_from(TranscriptSegment).where(
            TranscriptSegment.transcript_id == t.id))).scalar_one())
        await s.execute(delete(TranscriptSegment).where(
            TranscriptSegment.transcript_id == t.id))
        t.status, t.error, t.updated_at = "purged", None, now
        return n

    # -- personal fields of old cases -------------------------------------------------------

    async def purge_personal(self, now: datetime | None = None, *, dry_run: bool = False
                             ) -> PurgeReport:
        now = now or datetime.now(UTC)
        days = self.cfg.privacy.case_personal_retention_days
        out = PurgeReport(dry_run=dry_run)
        if not days:
            return out
        cutoff = now - timedelta(days=days)
        where = (Case.personal_purged_at.is_(None), Case.created_at < cutoff,
                 Case.call_state == "ended")
        if dry_run:
            async with self.sessions() as s:
                out.cases = int((await s.execute(
                    select(func.count()).select_from(Case).where(*where))).scalar_one())
            return out
        why = {"retention_days": days}
        while True:
            async with self.sessions() as s, s.begin():
                cases = list((await s.execute(select(Case).where(*where).order_by(Case.id)
                                              .limit(BATCH))).scalars().all())
                if not cases:
                    return out
                ids = [c.id for c in cases]
                recs = list((await s.execute(select(Recording).where(
                    Recording.case_id.in_(ids), Recording.deleted_at.is_(None)))
                ).scalars().all())
                if recs:
                    await self._delete_recordings(s, recs, now, why, action=None)
                    out.recordings += len(recs)
                for t in (await s.execute(select(Transcript).where(
                        Transcript.case_id.in_(ids), Transcript.status != "purged"))
                          ).scalars().all():
                    out.segments += await self._delete_transcript(s, t, now)
                    out.transcripts += 1
                for form in (await s.execute(select(CaseForm).where(
                        CaseForm.case_id.in_(ids)))).scalars().all():
                    form.subject_enc = form.address_enc = form.content_enc = None
                for task in (await s.execute(select(CallbackTask).where(
                        CallbackTask.case_id.in_(ids)))).scalars().all():
                    task.log = [{k: v for k, v in e.items() if k not in ("note", "note_enc")}
                                for e in (task.log or [])]
                for leg in (await s.execute(select(CallLeg).where(
                        CallLeg.case_id.in_(ids), CallLeg.role == "caller"))).scalars().all():
                    leg.party = None
                for ev in (await s.execute(select(CallEvent).where(
                        CallEvent.case_id.in_(ids)))).scalars().all():
                    if ev.detail and ({"caller", "caller_name", "note"} & set(ev.detail)):
                        ev.detail = {k: v for k, v in ev.detail.items()
                                     if k not in ("caller", "caller_name", "note")}
                for c in cases:
                    c.caller_enc = c.caller_name_enc = c.caller_hash = c.caller_masked = None
                    c.personal_purged_at = now
                    s.add(CallEvent(case_id=c.id, key=f"personal_deleted:{now.isoformat()}",
                                    kind="personal_data_deleted", at=now, detail=why,
                                    source="retention"))
                    Audit.add(s, SYSTEM, "retention.personal", c.number, why)
            out.cases += len(cases)
