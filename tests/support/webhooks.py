"""A department's own system for webhook tests: an aiohttp server on a free port of the
loopback that takes deliveries and checks their signatures as a department would."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from agent_desk.webhooks.signing import verify
from lab.harness import free_port


class DepartmentSystem:
    """A department's own system: takes webhooks on /hook, checks each signature with the
    secret it was given, answers ``status`` (or holds requests while ``gate`` is closed)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.secrets: list[str] = []
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        h = request.headers
        seen = {"key": h.get("Idempotency-Key"), "event": h.get("X-Hotline-Event"),
                "signature": h.get("X-Hotline-Signature", ""), "body": body,
                "verified": [verify(s, h.get("X-Hotline-Timestamp", ""), body,
                                    h.get("X-Hotline-Signature", ""), now=time.time())
                             for s in self.secrets]}
        self.requests.append(seen)
        if self.gate is not None:
            await self.gate.wait()
        seen["answered"] = self.status
        return web.Response(status=self.status)

    async def start(self) -> DepartmentSystem:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def answered_ok(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if 200 <= r.get("answered", 0) < 300]
