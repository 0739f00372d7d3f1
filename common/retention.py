"""Personal data destroyed when due: the report, the ``Purger`` each feature implements for the
data it owns, and the job that runs them in order (docs/security.md).

The features own their purges (cases/retention.py, asr/retention.py, agent_desk/retention.py,
telephony/calls/retention.py); the composition root hands them to ``RetentionJob`` in the
order that matters (personal fields of old cases first: they take the case's recordings and
transcript with them), and starts ``RetentionWorker`` to run the job every
``[recording] purge_interval_s``. ``hotline privacy purge [--dry-run]`` runs it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Rows changed per transaction by a purge.
BATCH = 200


@dataclass
class PurgeReport:
    """What a purge deleted (or, dry run, would delete)."""

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


class Purger(Protocol):
    """One feature's personal data past its retention period."""

    async def purge(self, now: datetime, *, dry_run: bool) -> PurgeReport: ...


class AuditTrail(Protocol):
    """Where a purge says what it deleted, inside its own transaction (the audit log)."""

    def add(self, session: AsyncSession, action: str, case: str | None,
            detail: dict[str, Any]) -> None: ...


class RetentionJob:
    """The purgers, run in the order given."""

    def __init__(self, purgers: Sequence[Purger]):
        self.purgers = list(purgers)
        self.runs = 0
        self.last: PurgeReport | None = None

    async def run(self, now: datetime | None = None, *, dry_run: bool = False) -> PurgeReport:
        now = now or datetime.now(UTC)
        report = PurgeReport(dry_run=dry_run)
        for purger in self.purgers:
            report.add(await purger.purge(now, dry_run=dry_run))
        self.runs += 1
        self.last = report
        if not dry_run and (report.recordings or report.transcripts or report.cases):
            log.info("retention: personal data past its period deleted", extra={
                "recordings": report.recordings, "transcripts": report.transcripts,
                "cases": report.cases, "cel_rows": report.cel_rows})
        return report


class RetentionWorker:
    """Runs the job at start and then every ``interval_s``; a failed run is tried again at
    the next interval."""

    def __init__(self, job: RetentionJob, interval_s: float):
        self.job = job
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="retention")
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.job.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention job failed (tried again at the next interval)")
            await asyncio.sleep(self.interval_s)
