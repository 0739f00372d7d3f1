"""The insight room, wired: the store and the service over the case loop, and the worker
that runs the hot-topic pass every ``[insight] interval_s`` and trains the classifier every
``train_interval_s`` (the first training at start)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.insight.services import Insight, Loop, Notify, Publish
from agent_desk.insight.store import InsightStore
from common.config import Config
from common.privacy import PersonalData
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class InsightPlugin:
    def __init__(self, cfg: Config, sessions: async_sessionmaker[AsyncSession],
                 personal: PersonalData, loop: Loop, *, publish: Publish | None = None,
                 notify: Notify | None = None):
        self.section = cfg.insight
        self.insight = Insight(InsightStore(sessions, personal), loop, cfg.insight,
                               publish=publish, notify=notify,
                               city_names={c.id: c.name for c in cfg.cities})
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if not self.section.enabled:
            return
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._every(self.section.interval_s, self.insight.run_once,
                                            "hot-topic pass", first=False),
                                name="insight-hot-topics"),
            asyncio.create_task(self._every(self.section.train_interval_s, self.insight.train,
                                            "classifier training", first=True),
                                name="insight-training"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await cancel_and_wait(self._tasks, what="insight worker")
            self._tasks = []

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]], what: str,
                     *, first: bool) -> None:
        if not first:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)
        while not self._stop.is_set():
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next run tries again; the service keeps going
                log.exception("insight job failed", extra={"job": what})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)
