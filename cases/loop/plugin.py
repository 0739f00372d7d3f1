"""The case loop's wiring: the taxonomy, the store with its time limits in working time, at
start the directory from the configuration (departments and their defaults per 事项), and the
红黄灯 sweep every ``[case_loop] sweep_interval_s``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.loop.calendar import WorkCalendar
from cases.loop.deadlines import TimeLimits, WorkingTimePolicy
from cases.loop.directory import configured
from cases.loop.store import CaseLoop, DeadlinePolicy, Outbox
from cases.loop.sweep import DeadlineSweep, Notify, SweepWorker
from cases.loop.taxonomy import Taxonomy
from common.config import Config
from common.db import utcnow
from common.privacy import PersonalData

log = logging.getLogger(__name__)


def taxonomy_of(cfg: Config) -> Taxonomy:
    f = cfg.case_loop.taxonomy_file
    return Taxonomy.load(None if f is None else (f if f.is_absolute() else cfg.base_dir / f))


def calendar_of(cfg: Config) -> WorkCalendar:
    section = cfg.case_loop
    return WorkCalendar(timezone=cfg.service.timezone, office_hours=section.office_periods(),
                        extra_holidays=section.extra_holidays,
                        extra_workdays=section.extra_workdays,
                        declared_years=section.calendar_years)


def limits_of(cfg: Config) -> TimeLimits:
    section = cfg.case_loop
    return TimeLimits(sign_hours=section.sign_hours, handling_days=section.limit_days,
                      yellow_share=section.yellow_share)


class CaseLoopPlugin:
    def __init__(self, cfg: Config, sessions: async_sessionmaker[AsyncSession],
                 personal: PersonalData, *, deadlines: DeadlinePolicy | None = None,
                 outbox: Outbox | None = None, notify: Notify | None = None,
                 clock: Callable[[], datetime] = utcnow, taxonomy: Taxonomy | None = None):
        # ``notify``: tells a department of a 督办单 opened on its case (the webhook room's).
        # ``taxonomy``: the 事项 taxonomy when the caller has loaded it already (read once).
        self.cfg = cfg
        self.calendar = calendar_of(cfg)
        self.limits = limits_of(cfg)
        self.loop = CaseLoop(sessions, personal, taxonomy or taxonomy_of(cfg),
                             deadlines or WorkingTimePolicy(self.limits, self.calendar),
                             timezone=cfg.service.timezone,
                             repeat_window_days=cfg.case_loop.repeat_window_days,
                             clock=clock, outbox=outbox,
                             districts={c.id: c.districts for c in cfg.cities})
        self.sweep = DeadlineSweep(sessions, self.calendar, self.limits, now=clock,
                                   notify=notify)
        self.sweeper = SweepWorker(self.sweep, cfg.case_loop.sweep_interval_s)

    async def start(self) -> None:
        section = self.cfg.case_loop
        entries = configured(section, Path(self.cfg.base_dir))
        if entries:
            await self.loop.upsert_departments(entries)
        for d in section.defaults:
            problems = self.loop.taxonomy.check("complaint", d.matter)
            if problems:
                raise ValueError(f"case_loop.defaults: {d.matter}: {'; '.join(problems)}")
            await self.loop.set_default(d.matter, d.city, d.department)
        log.info("case loop ready", extra={"departments": len(entries),
                                           "matters": len(self.loop.taxonomy.leaves())})
        self.warn_uncovered(self.loop.clock())
        await self.sweeper.start()

    def warn_uncovered(self, now: datetime, ahead_days: int = 60) -> list[int]:
        """Years the time limits may soon reach that the calendar does not know (each
        December, until chinesecalendar or ``[case_loop] calendar_years`` has the next)."""
        local = self.calendar.local(now).date()
        years = sorted({y for y in (local.year, (local + timedelta(days=ahead_days)).year)
                        if not self.calendar.covers(y)})
        for y in years:
            log.warning("case loop: no holiday schedule for a year the time limits may "
                        "reach; deadlines in it count Monday to Friday (no public holidays) until "
                        "chinesecalendar is upgraded or [case_loop] calendar_years and "
                        "extra_holidays/extra_workdays describe it", extra={"year": y})
        return years

    async def stop(self) -> None:
        await self.sweeper.stop()
