"""The FastAGI server under bad input: what Asterisk would never send must not hurt it."""

from __future__ import annotations

import asyncio

import pytest

from telephony.fastagi import AgiRequest, FastAgiServer
from tests.support.waiting import eventually


async def ok_route(request: AgiRequest) -> None:
    res = await request.send_command('SET VARIABLE X "1"')
    request.headers["result"] = str(res.get("status_code"))


@pytest.fixture
async def server():
    srv = FastAgiServer(header_timeout=0.5, command_timeout=0.5, route_timeout=1.0)
    srv.add_route("route", ok_route)
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.stop()


async def talk(port: int, data: bytes, reply: bytes | None = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        line = await asyncio.wait_for(reader.readline(), 2)
        out += line
        if reply is not None and line:
            writer.write(reply)
            await writer.drain()
        out += await asyncio.wait_for(reader.read(), 2)
    finally:
        writer.close()
    return out


def test_sync_routes_are_refused():
    async def go():
        srv = FastAgiServer()
        with pytest.raises(TypeError, match="async"):
            srv.add_route("x", lambda request: None)

    asyncio.run(go())


async def test_a_proper_request_is_served(server):
    out = await talk(server.port, b"agi_network_script: route\nagi_uniqueid: n-1.1\n\n",
                     b"200 result=1\n")
    assert b'SET VARIABLE X "1"' in out
    assert server.failures == 0


@pytest.mark.parametrize("payload", [
    b"agi_network_script: nowhere\n\n",                  # unknown route
    b"garbage without the blank line",                    # never finishes its headers
    b"agi_network_script: route\n" + b"A" * 70000,        # oversize headers
    b"\xff\xfe\x00\n\n",                                  # not text
])
async def test_bad_requests_are_closed_and_counted(server, payload):
    before = server.failures
    await talk(server.port, payload)

    async def counted() -> bool:  # the server counts the failure when it closes the request
        return server.failures == before + 1
    await eventually(counted, what="the failure counted")


async def test_asterisk_that_never_answers_a_command_is_let_go(server):
    before = server.failures
    out = await talk(server.port, b"agi_network_script: route\n\n", None)
    assert b"SET VARIABLE" in out
    assert server.failures == before + 1
