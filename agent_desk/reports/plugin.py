"""Scheduled loop reports: every day the day before's, once a week the week before's, on the
first of the month the month before's, written as XLSX and CSV (by department and by city)
under ``[reports] dir``:

    <dir>/daily/loop-2026-03-02-department.xlsx   <dir>/weekly/loop-2026-W10-city.csv
    <dir>/monthly/loop-2026-02-city.xlsx  …

The worker wakes every ``check_interval_s``, asks ``due()`` which periods should have their
files by now (a pure function of the local time and the settings) and writes those whose files
are missing, so a service that was down at 06:00 writes them when it is back. A period's files
are computed as of the period's end and written whole (a temporary file renamed), so writing
them again, by the worker or by hand (``ReportFiles.write``), gives the same files.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from agent_desk.reports.exports import to_csv, to_xlsx
from cases.loop.reports import GROUPS, Period, Query, Report, previous_period
from common.config import WEEKDAYS, Config, ReportsSection
from common.db import utcnow
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)
FOLDERS = {"day": "daily", "week": "weekly", "month": "monthly"}


class ReportSource(Protocol):
    """The loop's reports (cases/loop/reports.py LoopReports)."""

    @property
    def tz(self) -> ZoneInfo: ...

    async def report(self, q: Query, *, as_of: datetime | None = None) -> Report: ...


@dataclass(frozen=True)
class Due:
    day: Period
    week: Period
    month: Period


def due(now: datetime, tz: ZoneInfo, daily_at: time, weekly_on: str) -> Due:
    """The latest day, week and month whose files should exist at ``now``: yesterday's once
    today's ``daily_at`` has passed (else the day before), the week before the latest
    ``weekly_on`` at ``daily_at``, and the month before the latest first of a month at
    ``daily_at``."""
    local = now.astimezone(tz)
    today = local.date()
    written_today = local.time().replace(tzinfo=None) >= daily_at
    day = previous_period("day", today if written_today else today - timedelta(days=1), tz)
    back = (today.weekday() - WEEKDAYS.index(weekly_on)) % 7
    weekly = today - timedelta(days=back)
    if back == 0 and not written_today:
        weekly -= timedelta(days=7)
    month = previous_period("month", today if written_today else today - timedelta(days=1), tz)
    return Due(day, previous_period("week", weekly, tz), month)


class ReportFiles:
    def __init__(self, reports: ReportSource, directory: Path, lang: str = "zh-CN"):
        self.reports = reports
        self.dir = directory
        self.lang = lang

    def paths(self, period: Period) -> list[Path]:
        folder = self.dir / FOLDERS[period.kind]
        return [folder / f"loop-{period.key}-{by}.{ext}" for by in GROUPS
                for ext in ("xlsx", "csv")]

    def written(self, period: Period) -> bool:
        return all(p.exists() for p in self.paths(period))

    async def write(self, period: Period) -> list[Path]:
        """Write (or write again) the period's files; their paths."""
        out: list[Path] = []
        for by in GROUPS:
            # As of the period's end: the file does not depend on when it is written.
            report = await self.reports.report(Query(period, by), as_of=period.end)
            xlsx = await asyncio.to_thread(to_xlsx, report, self.lang)
            csv = to_csv(report, self.lang)
            folder = self.dir / FOLDERS[period.kind]
            for ext, data in (("xlsx", xlsx), ("csv", csv)):
                path = folder / f"loop-{period.key}-{by}.{ext}"
                await asyncio.to_thread(_write_whole, path, data)
                out.append(path)
        return out


def _write_whole(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ReportsWorker:
    """Writes the due reports at start and then every ``check_interval_s``; a failed run is
    tried again at the next check."""

    def __init__(self, files: ReportFiles, section: ReportsSection, tz: ZoneInfo, *,
                 clock: Callable[[], datetime] = utcnow):
        self.files = files
        self.section = section
        self.tz = tz
        self.clock = clock
        self.runs = 0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> list[Path]:
        """Write the due periods whose files are missing; the files written."""
        d = due(self.clock(), self.tz, self.section.daily_at, self.section.weekly_on)
        written: list[Path] = []
        for period in (d.day, d.week, d.month):
            if not self.files.written(period):
                written += await self.files.write(period)
        self.runs += 1
        if written:
            log.info("loop reports written", extra={"files": [str(p) for p in written]})
        return written

    async def start(self) -> None:
        if self.section.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="loop reports")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="loop reports")
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("loop reports failed (tried again at the next check)")
            await asyncio.sleep(self.section.check_interval_s)


def build(cfg: Config, reports: ReportSource, *, clock: Callable[[], datetime] = utcnow
          ) -> ReportsWorker:
    """The worker as configured ([reports]): files under data_dir unless ``dir`` is absolute."""
    files = ReportFiles(reports, cfg.data_path(cfg.reports.dir))
    return ReportsWorker(files, cfg.reports, reports.tz, clock=clock)
