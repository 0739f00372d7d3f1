"""The web console over HTTP as its users see it: a signed-in browser's worth of requests
(cookies, the CSRF header) and the console on a test server with its users and softphones."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from aiohttp.test_utils import TestClient

from agent_desk.softphone.phones import SoftphoneControl
from agent_desk.web.auth import Users
from cases.loop.store import DepartmentEntry
from common.facts import CallFact
from hotline.service import HotlineService
from lab.harness import Lab

CONSOLE_PASSWORD = "correct-horse-12345"
CONSOLE_USERS = [("agent1001", "agent", "1001"), ("agent1002", "agent", "1002"),
                 ("sup", "supervisor", None), ("admin", "admin", None)]
# The 承办单位 of the case-loop tests (seed_departments), and where a 事项 goes by default.
DEPARTMENTS = [
    DepartmentEntry("nanjing", "南京市人民政府", "city", "nanjing"),
    DepartmentEntry("nj-chengguan", "南京市城市管理局", "city", "nanjing", "nanjing", "城管局"),
    DepartmentEntry("nj-renshe", "南京市人力资源和社会保障局", "city", "nanjing", "nanjing",
                    "人社局"),
    DepartmentEntry("nj-water", "南京水务集团", "city", "nanjing", "nanjing", "供水公司"),
    DepartmentEntry("sz-chengguan", "苏州市城市管理局", "city", "suzhou", None, "城管局"),
    DepartmentEntry("js-power", "国网江苏省电力公司", "province", None, None, "供电公司"),
]
DEFAULTS = [("urban.sanitation.street_vending", "nanjing", "nj-chengguan"),
            ("urban.sanitation.street_vending", "suzhou", "sz-chengguan"),
            ("utilities.water.outage", "nanjing", "nj-water")]


class ConsoleUser:
    """One signed-in browser's worth of HTTP: cookies, and the CSRF header on changes."""

    def __init__(self, client: Any):
        self.client = client
        self.csrf = ""

    async def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                   csrf: bool = True, headers: dict[str, str] | None = None
                   ) -> tuple[int, Any]:
        h = dict(headers or {})
        if csrf and method != "GET" and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        kwargs: dict[str, Any] = {"headers": h}
        if raw is not None:
            kwargs["data"] = raw
            h.setdefault("Content-Type", "application/json")
        elif body is not None:
            kwargs["json"] = body
        resp = await asyncio.wait_for(self.client.request(method, path, **kwargs), 30)
        try:
            doc = await resp.json(content_type=None)
        except ValueError:
            doc = None
        return resp.status, doc

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.call("GET", path)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body, **kw)


class ConsoleHarness:
    def __init__(self, lab: Lab, service: HotlineService, console: Any, server: Any):
        self.lab = lab
        self.service = service
        self.console = console
        self.server = server
        self.clients: list[Any] = []
        self.controls: list[Any] = []

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/")).rstrip("/")

    async def anonymous(self) -> ConsoleUser:
        client = TestClient(self.server)
        await client.start_server()
        self.clients.append(client)
        return ConsoleUser(client)

    async def user(self, username: str) -> ConsoleUser:
        u = await self.anonymous()
        status, doc = await u.post("/api/login", {"username": username,
                                                  "password": CONSOLE_PASSWORD})
        assert status == 200, doc
        u.csrf = doc["csrf"]
        return u

    async def seed_departments(self, *logins: tuple[str, str]) -> None:
        """The departments (DEPARTMENTS, DEFAULTS) and a console user of each given
        (username, department id), role "department"."""
        loop = self.service.case_loop
        await loop.upsert_departments(DEPARTMENTS)
        for matter, city, dept in DEFAULTS:
            await loop.set_default(matter, city, dept)
        users = Users(self.service.store.sessions)
        for name, dept in logins:
            await users.add(name, CONSOLE_PASSWORD, "department", department_id=dept)

    @contextlib.contextmanager
    def loop_clock(self, at: datetime) -> Iterator[None]:
        """The case loop's changes happen at ``at`` meanwhile (the store's injected clock): a
        case dispatched days ago, without waiting days."""
        loop = self.service.case_loop
        before = loop.clock
        loop.clock = lambda: at
        try:
            yield
        finally:
            loop.clock = before

    async def own_sweep(self) -> Any:
        """The 红黄灯 sweep, run by the test only (its worker stopped): ``await
        sweep.run()`` when the test wants the lights brought up to date."""
        room = self.service.case_loop_room
        await room.sweeper.stop()
        return room.sweep

    async def call_case(self, caller: str, city: str, agent: str | None) -> str:
        """A case as the call tracker leaves it: routed to the city's queue, answered by the
        agent (or abandoned), ended."""
        svc, now = self.service, time.time()
        call_id = f"node1:case-{time.time_ns()}"
        facts = [("arrived", {"caller": caller, "dialed": "12345"}),
                 ("routed", {"queue": f"{city}-general", "city": city}),
                 ("queued", {"queue": f"{city}-general"})]
        facts += ([("answered", {"agent": agent, "uniqueid": f"u-{time.time_ns()}",
                                 "hold_time": 2})] if agent else
                  [("abandoned", {"hold_time": 9})])
        facts.append(("ended", {}))
        for kind, data in facts:
            await svc.store.apply(CallFact(kind, call_id, "node1", now, data))
        case = await svc.store.by_call(call_id)
        assert case is not None
        return str(case.number)

    async def agent_phone(self, agent_id: str, **kwargs: Any) -> Any:
        """The agent's softphone (a pjsua2 process) under the console's control."""
        phone = await self.lab.agent(agent_id, auto_answer=False, **kwargs)
        ctl = await SoftphoneControl(phone, self.service.redis, self.service.cfg.redis.prefix,
                                     agent_id).start()
        self.controls.append(ctl)
        return phone

    async def close(self) -> None:
        for ctl in self.controls:
            await ctl.stop()
        for c in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 10)
        await asyncio.wait_for(self.server.close(), 10)
        # The session's Asterisk is shared: every agent back in its queues, not paused.
        svc = self.service
        for a in svc.cfg.agents:
            svc.presence._state.pop(a.id, None)
            node = svc.presence.node_of(a.id)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.nodes[node].membership.apply_agent(a.id), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(svc.nodes[node].ami.queue_pause(f"PJSIP/{a.id}", False),
                                       10)
        # Let the service handle the events of the reset before it is stopped (an AmiClient
        # stopped mid-handler can lose its cancellation under Python 3.11's wait_for).
        with contextlib.suppress(Exception):
            await asyncio.sleep(0.5)
            await svc.drain(10)
