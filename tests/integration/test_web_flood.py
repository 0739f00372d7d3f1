"""The web port flooded while calls come in (issue 15, Medium 10): the console and the FastAGI
router share one event loop, so the flood must be refused cheaply (429 from the per-address
limit of [web], agent_desk/web/limits.py) and real calls must still be routed by the router,
not by the dialplan's fallback. And the OpenAPI description is built once per app, not per
request. The benchmark with the numbers is bench/web_flood.py."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from agent_desk.web import app as web_app
from hotline.desk import console_app
from tests.support.calls import answered_call
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

CLIENTS = 50
# What a stranger can ask without a session: the description, the login page, who am I, and
# a sign-in with a body that is not JSON.
FLOOD = (("GET", "/api/openapi.json", None), ("GET", "/login", None), ("GET", "/api/me", None),
         ("POST", "/api/login", b'{"username": "x", "password": '))


async def test_calls_are_routed_while_the_web_port_is_flooded(console, lab, phones, sounds,
                                                              tmp_path):
    service = console.service
    answers: Counter[str] = Counter()
    stop = asyncio.Event()

    async def stranger(i: int, http: aiohttp.ClientSession) -> None:
        k = i
        while not stop.is_set():
            method, path, body = FLOOD[k % len(FLOOD)]
            k += 1
            async with http.request(method, console.base_url + path, data=body) as resp:
                await resp.read()
                answers[str(resp.status)] += 1

    fallbacks = service.router.fallbacks
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        flood = [asyncio.create_task(stranger(i, http)) for i in range(CLIENTS)]
        try:
            await eventually(lambda: _refused(answers), what="the flood to be refused")
            for caller in ("13812340001", "13812340002"):
                await answered_call(lab, phones, sounds, caller=caller, talk_s=1.0,
                                    tmp=tmp_path)
            refused_during_calls = answers["429"] + answers["503"]
        finally:
            stop.set()
            await asyncio.gather(*flood)

    await service.drain()
    cases = await eventually(lambda: _ended(service, 2), what="both cases to end")
    assert service.router.fallbacks == fallbacks
    assert [c.route_source for c in cases] == ["router", "router"], [
        (c.number, c.route_source, c.route_reasons) for c in cases]
    # Every stranger was answered (nothing left queued), most of them refused.
    assert set(answers) <= {"200", "400", "401", "429", "503"}, answers
    assert refused_during_calls > 0, answers


async def _refused(answers: Counter[str]) -> bool:
    return answers["429"] + answers["503"] > 0


async def _ended(service, n: int):
    cases = await service.store.recent(10)
    return cases if len(cases) == n and all(c.call_state == "ended" for c in cases) else None


async def test_the_openapi_description_is_built_once_per_app(console, monkeypatch):
    built = []
    describe = web_app.openapi.describe

    def counting(*args, **kwargs):
        built.append(1)
        return describe(*args, **kwargs)

    monkeypatch.setattr(web_app.openapi, "describe", counting)
    app, _deps = console_app(console.service)
    assert len(built) == 1
    [route] = [r for r in app.router.routes() if r.method == "GET" and r.resource is not None
               and r.resource.canonical == "/api/openapi.json"]
    first = await route.handler(make_mocked_request("GET", "/api/openapi.json", app=app))
    second = await route.handler(make_mocked_request("GET", "/api/openapi.json", app=app))
    assert first.body is second.body  # the same bytes object: nothing rebuilt or re-encoded
    assert len(built) == 1
    # And over HTTP, the served description is the one built.
    anon = await console.anonymous()
    status, spec = await anon.get("/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
