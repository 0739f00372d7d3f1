"""A TCP fault injector to put between the service and a real Asterisk's AMI.

It forwards bytes both ways and can, on demand: split every chunk inside its first multi-byte
UTF-8 character (the read boundary that broke panoramisk's decoding), inject bytes towards the
client, black-hole the current connections (a half-open TCP: nothing flows, nothing closes),
refuse new connections (the network is down), or cut everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    flowing: asyncio.Event = field(default_factory=asyncio.Event)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.split_multibyte = False
        self.refusing = False
        self.blackholed = False
        self.connections = 0
        self.splits_done = 0
        self._pairs: list[_Pair] = []

    async def start(self) -> FaultProxy:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter):
        if self.refusing:
            cwriter.transport.abort()
            return
        self.connections += 1
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        pair = _Pair(cwriter, swriter)
        if not self.blackholed:
            pair.flowing.set()
        self._pairs.append(pair)
        await asyncio.gather(self._pump(pair, sreader, cwriter, to_client=True),
                             self._pump(pair, creader, swriter, to_client=False),
                             return_exceptions=True)
        for w in (cwriter, swriter):
            with contextlib.suppress(Exception):
                w.close()
        with contextlib.suppress(ValueError):
            self._pairs.remove(pair)

    async def _pump(self, pair: _Pair, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, *, to_client: bool) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await pair.flowing.wait()  # black-holed: the peer sees silence, not a close
            if to_client and self.split_multibyte:
                cut = _inside_multibyte(data)
                if cut is not None:
                    writer.write(data[:cut])
                    await writer.drain()
                    await asyncio.sleep(0.02)  # the client reads the first part on its own
                    self.splits_done += 1
                    data = data[cut:]
            writer.write(data)
            await writer.drain()

    def blackhole(self, on: bool = True, *, including_new: bool = False) -> None:
        """Stop all traffic on the current connections without closing them (half-open);
        with ``including_new`` new connections stay silent too, until ``blackhole(False)``."""
        self.blackholed = on and including_new
        for pair in self._pairs:
            if on:
                pair.flowing.clear()
            else:
                pair.flowing.set()

    def inject(self, data: bytes) -> None:
        """Bytes to every connected client, as if Asterisk had sent them."""
        for pair in self._pairs:
            pair.client.write(data)

    def cut(self) -> None:
        for pair in list(self._pairs):
            for w in (pair.client, pair.server):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._pairs.clear()


def _inside_multibyte(data: bytes) -> int | None:
    for i, b in enumerate(data):
        if b >= 0xC0:  # lead byte of a multi-byte character: cut after it
            return i + 1
    return None
