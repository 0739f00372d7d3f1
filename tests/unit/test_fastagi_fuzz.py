"""Bad input at scale for the FastAGI server (the dialplan's only way to the router): truncated,
mutated, binary, oversized and never-ending requests, and garbage replies to its commands. The
server must answer each by closing (Asterisk then takes its fallback queue), never crash, and
go on serving good requests."""

from __future__ import annotations

import asyncio
import logging
import random

from telephony.fastagi import AgiAnswer, FastAgiServer

GOOD = ("agi_network: yes\nagi_network_script: route\nagi_uniqueid: node1-1.1\n"
        "agi_callerid: 13812345678\nagi_calleridname: 王芳\nagi_arg_1: nanjing\n"
        "agi_arg_2: 12345\n\n").encode()


def corpus(seed: int = 12345, n: int = 300) -> list[bytes]:
    rnd = random.Random(seed)
    out = [GOOD[:i] for i in range(0, len(GOOD), 7)]  # truncated anywhere (mid-character too)
    for _ in range(n):
        kind = rnd.randrange(6)
        if kind == 0:
            b = bytearray(GOOD)
            for _ in range(rnd.randint(1, 8)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            out.append(bytes(b))
        elif kind == 1:
            out.append(rnd.randbytes(rnd.randint(1, 3000)))
        elif kind == 2:
            out.append(b"agi_network_script: route\n" + b"x" * rnd.randint(1000, 200_000))
        elif kind == 3:
            out.append(b"".join(f"agi_{i}: {'v' * rnd.randint(0, 50)}\n".encode()
                                for i in range(rnd.randint(50, 3000))) + b"\n")
        elif kind == 4:
            out.append(GOOD.replace(b": ", rnd.choice([b":", b"", b"::", b": \xff\xfe"])))
        else:
            out.append(GOOD.replace(b"route", rnd.choice([b"", b"../etc", b"route?x=1",
                                                          b"\x00", "路由".encode()])))
    return out


async def send(port: int, data: bytes, reply: bytes = b"200 result=1\n") -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    commands: list[bytes] = []
    try:
        writer.write(data)
        await writer.drain()
        while True:
            line = await asyncio.wait_for(reader.readline(), 5)
            if not line:
                break
            commands.append(line)
            writer.write(reply)
            await writer.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    return commands


async def test_fuzzed_requests_and_replies_never_break_the_server(caplog):
    served: list[dict[str, str]] = []

    class Router:
        def answer(self, headers):  # type: ignore[no-untyped-def]
            served.append(headers)
            return AgiAnswer({"HOTLINE_ROUTE": "nanjing-general|0|20261122000001"})

    server = FastAgiServer(header_timeout=0.3, command_timeout=0.3, route_timeout=0.5)
    server.add_route("route", Router())
    await server.start("127.0.0.1", 0)
    caplog.set_level(logging.WARNING)
    try:
        cases = corpus()
        sem = asyncio.Semaphore(50)

        async def one(data: bytes) -> None:
            async with sem:
                await send(server.port, data)

        await asyncio.wait_for(asyncio.gather(*(one(d) for d in cases)), 120)
        # Garbage answers to the server's commands.
        rnd = random.Random(7)
        replies = [rnd.choice([rnd.randbytes(rnd.randint(0, 200)) + b"\n", b"\n",
                               b"200 result=\n", b"520-Invalid\n", b"999 " + b"9" * 5000])
                   for _ in range(50)]
        await asyncio.wait_for(asyncio.gather(*(send(server.port, GOOD, reply=r)
                                                for r in replies)), 60)
        # Still serving, exactly as before.
        before = len(served)
        assert await send(server.port, GOOD) == [
            b'SET VARIABLE HOTLINE_ROUTE "nanjing-general|0|20261122000001"\n']
        assert len(served) == before + 1 and served[-1]["agi_calleridname"] == "王芳"
        assert server.requests >= len(cases)
        assert "Traceback" not in caplog.text and "Unhandled" not in caplog.text
    finally:
        await server.stop()
