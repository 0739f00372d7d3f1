"""The case loop's wiring: the taxonomy, the store, and at start the directory from the
configuration (departments and their defaults per 事项)."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.loop.directory import configured
from cases.loop.store import CaseLoop, DeadlinePolicy, Outbox
from cases.loop.taxonomy import Taxonomy
from common.config import Config
from common.privacy import PersonalData

log = logging.getLogger(__name__)


def taxonomy_of(cfg: Config) -> Taxonomy:
    f = cfg.case_loop.taxonomy_file
    return Taxonomy.load(None if f is None else (f if f.is_absolute() else cfg.base_dir / f))


class CaseLoopPlugin:
    def __init__(self, cfg: Config, sessions: async_sessionmaker[AsyncSession],
                 personal: PersonalData, *, deadlines: DeadlinePolicy | None = None,
                 outbox: Outbox | None = None):
        self.cfg = cfg
        self.loop = CaseLoop(sessions, personal, taxonomy_of(cfg), deadlines,
                             timezone=cfg.service.timezone,
                             repeat_window_days=cfg.case_loop.repeat_window_days,
                             outbox=outbox)

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

    async def stop(self) -> None:
        return None
