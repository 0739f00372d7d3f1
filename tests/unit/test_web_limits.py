"""The web port's limits (agent_desk/web/limits.py): the per-address token bucket as logic, and
the middleware in a real aiohttp server — strangers over their rate get 429, a request over
the in-flight cap gets 503, signed-in users and WebSockets are not counted as strangers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_desk.web.auth import COOKIE, Sessions
from agent_desk.web.limits import AddressRate, limits
from common.config import WebSection


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_its_burst_then_its_rate():
    clock = Clock()
    rate = AddressRate(10, 3, clock)
    assert [rate.take("10.0.0.1") for _ in range(3)] == [0, 0, 0]
    wait = rate.take("10.0.0.1")
    assert wait == pytest.approx(0.1)
    assert rate.take("10.0.0.2") == 0  # another address has its own bucket
    clock.now += 0.1
    assert rate.take("10.0.0.1") == 0
    assert rate.take("10.0.0.1") > 0
    clock.now += 60  # refilled up to the burst, not beyond
    assert [rate.take("10.0.0.1") for _ in range(4)][:3] == [0, 0, 0]
    assert rate.take("10.0.0.1") > 0


def test_full_buckets_are_forgotten_when_too_many_addresses(monkeypatch):
    monkeypatch.setattr("agent_desk.web.limits.ADDRESSES_MAX", 3)
    clock = Clock()
    rate = AddressRate(1, 1, clock)
    for a in ("a", "b", "c"):
        rate.take(a)
    clock.now += 10  # a, b, c full again
    assert rate.take("d") == 0
    assert set(rate._buckets) == {"d"}


SECRET = "k" * 32


class App:
    """The limits in front of handlers: ``/slow`` waits until released."""

    def __init__(self, settings: WebSection):
        self.settings = settings
        self.sessions = Sessions(SECRET, 3600)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    def build(self) -> web.Application:
        app = web.Application(middlewares=[limits(lambda: self.settings, self.sessions,
                                                  hold_s=0.01)])

        async def fast(request: web.Request) -> web.StreamResponse:
            return web.json_response({"ok": True})

        async def slow(request: web.Request) -> web.StreamResponse:
            self.entered.set()
            await self.release.wait()
            return web.json_response({"ok": True})

        async def ws(request: web.Request) -> web.StreamResponse:
            sock = web.WebSocketResponse()
            await sock.prepare(request)
            await sock.send_str("hello")
            async for _ in sock:
                pass
            return sock

        app.router.add_get("/fast", fast)
        app.router.add_get("/slow", slow)
        app.router.add_get("/ws", ws)
        return app


@pytest.fixture
async def served() -> AsyncIterator[tuple[App, TestClient[Any, Any]]]:
    app = App(WebSection(anonymous_requests_per_s=1, anonymous_burst=3,
                         max_requests_in_flight=1))
    client: TestClient[Any, Any] = TestClient(TestServer(app.build(), host="127.0.0.1"))
    await client.start_server()
    yield app, client
    app.release.set()
    await client.close()


async def test_strangers_over_their_rate_get_429_signed_in_users_do_not(served):
    app, client = served
    statuses = [(await client.get("/fast")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = await client.get("/fast")
    assert refused.status == 429
    assert (await refused.json())["error"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    # A forged cookie is still a stranger.
    assert (await client.get("/fast", cookies={COOKIE: "forged.sig"})).status == 429

    user = type("U", (), {"id": 1, "username": "sup", "role": "supervisor", "agent_id": None,
                         "session_version": 0})()
    cookie, _ = app.sessions.issue(user)
    assert [(await client.get("/fast", cookies={COOKIE: cookie})).status
            for _ in range(5)] == [200] * 5


async def test_one_request_over_the_in_flight_cap_gets_503(served):
    app, client = served
    app.settings = WebSection(anonymous_requests_per_s=0, max_requests_in_flight=1)
    first = asyncio.create_task(client.get("/slow"))
    await app.entered.wait()
    second = await client.get("/fast")
    assert second.status == 503
    assert (await second.json())["error"] == "busy"
    app.release.set()
    assert (await first).status == 200
    assert (await client.get("/fast")).status == 200  # the slot is free again


async def test_websockets_do_not_take_a_request_slot(served):
    app, client = served
    app.settings = WebSection(anonymous_requests_per_s=0, max_requests_in_flight=1)
    sock = await client.ws_connect("/ws")
    assert (await sock.receive_str()) == "hello"
    assert (await client.get("/fast")).status == 200
    await sock.close()


async def test_limits_off():
    app = App(WebSection(anonymous_requests_per_s=0, max_requests_in_flight=0))
    client: TestClient[Any, Any] = TestClient(TestServer(app.build(), host="127.0.0.1"))
    await client.start_server()
    try:
        assert {(await client.get("/fast")).status for _ in range(20)} == {200}
    finally:
        await client.close()
