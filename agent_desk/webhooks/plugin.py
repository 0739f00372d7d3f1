"""The webhooks room, wired: the outbox the case loop writes in its transactions (and the
``notify`` other writers use), the delivery worker, and the admin's services.

At start the master secret is read (``[webhooks] secret_env``). Without it nothing can be
signed: the service refuses to start if a department has a webhook_url, and otherwise runs
without the worker (with a warning) until one is set."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.webhooks.services import WebhookAdmin, WebhookKeys
from agent_desk.webhooks.worker import WebhookWorker
from cases.loop.models import Department
from cases.loop.outbox import WebhookOutbox
from common.config import Config, ConfigError
from common.db import utcnow

log = logging.getLogger(__name__)


class WebhooksPlugin:
    def __init__(self, cfg: Config, sessions: async_sessionmaker[AsyncSession], *,
                 matter_name: Callable[[str | None], str] = lambda _code: "",
                 clock: Callable[[], datetime] = utcnow,
                 rand: Callable[[], float] = random.random):
        # ``matter_name``: a 事项's full name from its code (the case loop's taxonomy).
        self.cfg = cfg
        self.sessions = sessions
        s = cfg.webhooks
        self.keys = WebhookKeys(grace_s=s.rotation_grace_s, clock=clock)
        self.worker = WebhookWorker(sessions, s, self.keys, clock=clock, rand=rand)
        self.outbox = WebhookOutbox(sessions, matter_name=matter_name, clock=clock,
                                    enabled=s.enabled, committed=self.worker.wake)
        self.admin = WebhookAdmin(sessions, self.keys, wake=self.worker.wake, clock=clock)

    async def start(self) -> None:
        if not self.cfg.webhooks.enabled:
            return
        try:
            self.keys.master = self.cfg.webhook_secret
        except ConfigError as exc:
            hooked = await self._hooked()
            if hooked:
                raise ConfigError(f"{exc} (departments with a webhook_url: "
                                  f"{', '.join(hooked[:5])})") from None
            log.warning("webhooks: no master secret, nothing will be delivered until it is "
                        "set", extra={"why": str(exc)})
            return
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()

    async def _hooked(self) -> list[str]:
        async with self.sessions() as s:
            return list((await s.execute(select(Department.id).where(
                Department.active.is_(True), Department.webhook_url.is_not(None),
                Department.webhook_url != "").order_by(Department.id))).scalars())
