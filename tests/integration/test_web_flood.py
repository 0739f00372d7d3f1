"""The web port flooded while calls come in (issue 15, Medium 10): the console and the FastAGI
router share one event loop, so the flood must be refused cheaply (429 from the per-address
limit of [web], agent_desk/web/limits.py) and real calls must still be routed by the router,
not by the dialplan's fallback. And the OpenAPI description is built once per app, not per
request. The benchmark with the numbers is bench/web_flood.py."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from agent_desk.web import app as web_app
from hotline.desk import console_app
from lab.harness import REPO
from tests.support.calls import answered_call
from tests.support.waiting import eventually

pytestmark = pytest.mark.asterisk

CLIENTS = 50
# The strangers hammer from a process of their own (bench/web_flood.py's flood: what a stranger
# can ask without a session), as they would from outside: clients in the service's own event
# loop would make the loop busy with their side of the flood too.
FLOODER = REPO / "bench" / "web_flood.py"


async def test_calls_are_routed_while_the_web_port_is_flooded(console, lab, phones, sounds,
                                                              tmp_path):
    service = console.service
    fallbacks = service.router.fallbacks
    flood = await asyncio.create_subprocess_exec(
        sys.executable, str(FLOODER), "flood",
        "--url", console.base_url.rstrip("/"), "--clients", str(CLIENTS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert flood.stdin is not None and flood.stdout is not None
    try:
        assert json.loads(await asyncio.wait_for(flood.stdout.readline(), 30)) == {
            "ready": True}
        async with aiohttp.ClientSession() as http:
            # This machine's address is refused once the flood has spent its allowance.
            await eventually(lambda: _refused(http, console.base_url), timeout=60,
                             what="the flood to be refused")
        for caller in ("13812340001", "13812340002"):
            await answered_call(lab, phones, sounds, caller=caller, talk_s=1.0,
                                tmp=tmp_path)
    finally:
        flood.stdin.write(b"stop\n")
        await flood.stdin.drain()
        out = await asyncio.wait_for(flood.stdout.read(), 60)
        await flood.wait()
    answers = json.loads(out.decode().strip().splitlines()[-1])["answers"]

    await service.drain()
    cases = await eventually(lambda: _ended(service, 2), what="both cases to end")
    assert service.router.fallbacks == fallbacks
    assert [c.route_source for c in cases] == ["router", "router"], [
        (c.number, c.route_source, c.route_reasons) for c in cases]
    # Every stranger was answered (nothing left queued), many of them refused.
    assert set(answers) <= {"200", "400", "401", "429", "503"}, answers
    assert answers.get("429", 0) + answers.get("503", 0) > 0, answers


async def _refused(http: aiohttp.ClientSession, base: str) -> bool:
    async with http.get(base.rstrip("/") + "/api/me") as resp:
        return resp.status in (429, 503)


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
