"""The FastAGI server over loopback, with a client that speaks the protocol as Asterisk does:
agi_* headers and a blank line, then a reply line for every command, until the server closes."""

from __future__ import annotations

import asyncio

from telephony.fastagi import AgiAnswer, FastAgiServer

HEAD = ("agi_network: yes\nagi_network_script: {route}\nagi_uniqueid: node1-1.1\n"
        "agi_callerid: 13812345678\nagi_arg_1: nanjing\nagi_arg_2: 12345\n\n")


async def exchange(port: int, route: str, reply: bytes = b"200 result=1\n",
                   head: str | None = None) -> list[str]:
    """Send a request; answer each command with ``reply``; return the commands received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((head or HEAD.format(route=route)).encode())
    await writer.drain()
    commands = []
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            break
        commands.append(line.decode().rstrip("\n"))
        writer.write(reply)
        await writer.drain()
    writer.close()
    return commands


class Answering:
    def __init__(self, later: bool = False, value: str | None = "q|0|1"):
        self.later = later
        self.value = value
        self.seen: list[dict[str, str]] = []

    def answer(self, headers):  # type: ignore[no-untyped-def]
        self.seen.append(headers)
        result = None if self.value is None else AgiAnswer({"HOTLINE_ROUTE": self.value,
                                                            "OTHER": 'a "quoted" value'})
        if not self.later:
            return result

        async def later() -> AgiAnswer | None:
            await asyncio.sleep(0.01)
            return result

        return later()


async def test_answering_stream_and_bad_requests():
    server = FastAgiServer(header_timeout=0.5, route_timeout=0.5)
    now, later, none = Answering(), Answering(later=True), Answering(value=None)
    server.add_route("now", now)
    server.add_route("later", later)
    server.add_route("none", none)

    async def stream(request):  # type: ignore[no-untyped-def]
        res = await request.send_command("GET VARIABLE X")
        await request.set_variables({"Y": str(res["status_code"])})

    async def slow(request):  # type: ignore[no-untyped-def]
        await asyncio.sleep(5)

    server.add_route("stream", stream)
    server.add_route("slow", slow)
    await server.start("127.0.0.1", 0)
    try:
        expected = ['SET VARIABLE HOTLINE_ROUTE "q|0|1"',
                    'SET VARIABLE OTHER "a \\"quoted\\" value"']
        assert await exchange(server.port, "now") == expected
        assert now.seen[0]["agi_arg_2"] == "12345" and now.seen[0]["agi_uniqueid"] == "node1-1.1"
        assert await exchange(server.port, "later") == expected
        # Nothing to set: the server closes at once and the dialplan takes its fallback.
        assert await exchange(server.port, "none") == []
        assert await exchange(server.port, "stream") == ["GET VARIABLE X", 'SET VARIABLE Y "200"']
        assert server.failures == 0
        # Bad input: an unknown route, a refused command, a stuck endpoint, headers that never
        # end: each closes the connection (Asterisk falls back) and counts as a failure.
        assert await exchange(server.port, "nowhere") == []
        assert len(await exchange(server.port, "now", reply=b"510 Invalid command\n")) == 2
        assert await exchange(server.port, "slow") == []
        assert await exchange(server.port, "", head="agi_network: yes\nagi_netw") == []
        assert server.failures == 4
        # Asterisk may send "100 Trying" and usage-error continuation lines before the reply.
        assert len(await exchange(server.port, "now",
                                  reply=b"100 result=0 Trying...\n200 result=1\n")) == 2
    finally:
        await server.stop()
