"""FastAGI server: panoramisk's ``Application`` routes, served by a lean asyncio protocol.

panoramisk 1.4 reads the request 100 bytes at a time with no limit or timeout, and its
``add_route`` wraps plain functions with ``asyncio.coroutine``, which Python 3.11 no longer has.
Here routes must be ``async def``, headers are bounded in size and time, every command's reply
is awaited with a timeout, and a route that fails or overruns never leaves Asterisk waiting: the
socket is closed and the dialplan takes its fallback.

Two kinds of endpoint share the port:

* an *answering* endpoint (``answer(headers)`` returns the variables to set, or an awaitable of
  them) is served by the protocol itself: headers in, one write of ``SET VARIABLE`` commands,
  replies counted, close. No task, no stream objects: the routing decision, asked for every
  call, costs one read and one write;
* any other ``async def endpoint(request)`` gets an ``AgiRequest`` with the usual
  ``send_command`` and runs as a task, as with panoramisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from panoramisk.fast_agi import Application, Request
from panoramisk.utils import parse_agi_result

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024


class AgiError(Exception):
    pass


class AgiWriter(Protocol):
    """What AgiRequest writes to: an asyncio StreamWriter, or the slice of one over a
    protocol's transport (_Writer)."""

    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


class AgiRequest(Request):  # type: ignore[misc]  # panoramisk ships no types
    """A FastAGI request whose commands are bounded in time."""

    def __init__(self, app: FastAgiServer, headers: dict[str, str],
                 reader: asyncio.StreamReader, writer: AgiWriter):
        super().__init__(app=app, headers=headers, reader=reader, writer=writer,
                         encoding=app.default_encoding)
        self.command_timeout = app.command_timeout
        self.started = time.monotonic()

    @property
    def args(self) -> list[str]:
        out = []
        i = 1
        while f"agi_arg_{i}" in self.headers:
            out.append(self.headers[f"agi_arg_{i}"])
            i += 1
        return out

    async def send_command(self, command: str) -> dict[str, Any]:
        results = await self.send_commands([command])
        return results[0]

    async def send_commands(self, commands: list[str]) -> list[dict[str, Any]]:
        """Send several commands in one write and read their replies (Asterisk answers them in
        order); one round trip instead of one per command."""
        if any("\n" in c for c in commands):
            raise AgiError("an AGI command cannot contain a newline")
        self.writer.write("".join(c + "\n" for c in commands).encode(self.encoding))
        await self.writer.drain()
        results = []
        for _ in commands:
            results.append(await asyncio.wait_for(self._read_one(), self.command_timeout))
        return results

    async def _read_one(self) -> dict[str, Any]:
        line = await self.reader.readline()
        if not line:
            raise AgiError("Asterisk closed the AGI connection")
        result: dict[str, Any] = parse_agi_result(
            line.decode(self.encoding, "replace").rstrip("\n"))
        while result.get("status_code") == 100:
            line = await self.reader.readline()
            result = parse_agi_result(line.decode(self.encoding, "replace").rstrip("\n"))
        if result.get("error") == "AGIUsageError":
            extra = await self.reader.readline()
            result["msg"] = str(result.get("msg", "")) + extra.decode(self.encoding, "replace")
        return result

    async def set_variables(self, values: dict[str, str]) -> None:
        cmds = [f'SET VARIABLE {k} "{_quote(v)}"' for k, v in values.items()]
        for res in await self.send_commands(cmds):
            if res.get("status_code") != 200:
                raise AgiError(f"SET VARIABLE failed: {res}")


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


Endpoint = Callable[[AgiRequest], Awaitable[None]]


@dataclass(frozen=True)
class AgiAnswer:
    """What an answering endpoint wants set on the channel (in this order)."""

    variables: dict[str, str]


class AnsweringEndpoint(Protocol):
    def answer(self, headers: dict[str, str]) -> AgiAnswer | Awaitable[AgiAnswer | None] | None:
        """The variables to set, at once or after awaiting; ``None``: set nothing (the
        dialplan takes its fallback)."""


_HEADER = re.compile(r"^(agi_[A-Za-z0-9_]+): ([^\r\n]*)\r?$", re.MULTILINE)


def parse_headers(raw: bytes, encoding: str = "utf-8") -> dict[str, str]:
    # One regex pass: this runs for every call, and a loop over lines costs more than the
    # routing decision itself.
    return dict(_HEADER.findall(raw.decode(encoding, "replace")))


def set_commands(variables: dict[str, str], encoding: str = "utf-8") -> bytes:
    return "".join(f'SET VARIABLE {k} "{_quote(v)}"\n'
                   for k, v in variables.items()).encode(encoding)


class _Writer:
    """The slice of StreamWriter that AgiRequest uses, over the protocol's transport."""

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        # Commands are a few hundred bytes: the socket buffer never fills.
        return None

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


class _AgiConnection(asyncio.Protocol):
    """One FastAGI request from Asterisk."""

    __slots__ = (
        "_failed",
        "awaiting",
        "buf",
        "reader",
        "server",
        "state",
        "task",
        "timer",
        "transport",
    )

    def __init__(self, server: FastAgiServer):
        self.server = server
        self.buf = b""
        self.state = 0  # 0 headers, 1 awaiting replies (answering), 2 stream mode, 3 closed
        self.awaiting = 0
        self.reader: asyncio.StreamReader | None = None
        self.task: asyncio.Future[Any] | None = None
        self._failed = False

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's protocol is always handed a (read-write) Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.server.requests += 1
        # One timer for the whole exchange (headers, decision, replies): Asterisk must not
        # wait on a stuck request, and one timer per call is all the protocol can afford.
        self.timer = self.server.loop.call_later(
            self.server.header_timeout + self.server.route_timeout, self._expired, "request")

    # -- input ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state == 0:
            self.buf += data
            end = self.buf.find(b"\n\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    self._fail("FastAGI request unreadable", {"error": "headers too long"})
                return
            raw, self.buf = self.buf[:end], self.buf[end + 2:]
            self._dispatch(parse_headers(raw, self.server.default_encoding))
        elif self.state == 1:
            self.buf += data
            self._replies()
        elif self.state == 2 and self.reader is not None:
            self.reader.feed_data(data)

    def eof_received(self) -> bool | None:
        if self.reader is not None:
            self.reader.feed_eof()
        if self.state in (0, 1):
            self._fail("FastAGI request ended early", {"state": self.state})
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.timer.cancel()
        if self.reader is not None:
            self.reader.feed_eof()
        if self.state in (0, 1) and not self._failed:
            self._failed = True
            self.server.failures += 1
        self.state = 3

    # -- answering endpoints ------------------------------------------------------------------

    def _dispatch(self, headers: dict[str, str]) -> None:
        server = self.server
        script = headers.get("agi_network_script", "").split("?", 1)[0]
        route = server._route.get(script)
        if route is None:
            self._fail("FastAGI request for an unknown route", {"route": script[:64]})
            return
        answer = getattr(route, "answer", None)
        if answer is None:
            self._stream(route, headers, script)
            return
        try:
            result = answer(headers)
        except Exception:
            log.exception("FastAGI route failed", extra={"route": script})
            self._fail(None, {})
            return
        if result is None or isinstance(result, AgiAnswer):
            self._send(result)
        else:
            self.state = 1  # nothing to read until we write
            self.task = asyncio.ensure_future(result)
            self.task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Future[Any]) -> None:
        if self.state == 3:
            return
        if task.cancelled():
            self._fail(None, {})
            return
        exc = task.exception()
        if exc is not None:
            log.error("FastAGI route failed", exc_info=exc)
            self._fail(None, {})
            return
        self._send(task.result())

    def _send(self, result: AgiAnswer | None) -> None:
        if result is None or not result.variables:
            self._close()
            return
        self.state = 1
        self.awaiting = len(result.variables)
        self.transport.write(set_commands(result.variables, self.server.default_encoding))
        self._replies()

    def _replies(self) -> None:
        """Count Asterisk's final replies ("200 result=1"); skip "100 Trying", usage-error
        continuation lines ("520-...") and "HANGUP" notices."""
        while self.awaiting > 0:
            end = self.buf.find(b"\n")
            if end < 0:
                return
            line, self.buf = self.buf[:end], self.buf[end + 1:]
            if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
                if line[:3] == b"100":
                    continue
                self.awaiting -= 1
                if line[:3] != b"200" and not self._failed:
                    self.server.failures += 1
                    self._failed = True
                    log.warning("FastAGI command refused", extra={
                        "reply": line[:80].decode("utf-8", "replace")})
        self._close()

    # -- stream endpoints (the general case) ---------------------------------------------------

    def _stream(self, route: Endpoint, headers: dict[str, str], script: str) -> None:
        self.timer.cancel()
        self.state = 2
        self.reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES, loop=self.server.loop)
        if self.buf:
            self.reader.feed_data(self.buf)
            self.buf = b""
        request = AgiRequest(self.server, headers, self.reader, _Writer(self.transport))
        self.task = asyncio.ensure_future(self._run(route, request, script))

    async def _run(self, route: Endpoint, request: AgiRequest, script: str) -> None:
        server = self.server
        try:
            await asyncio.wait_for(route(request), server.route_timeout)
        except (TimeoutError, AgiError, ConnectionError) as exc:
            server.failures += 1
            log.warning("FastAGI route did not finish", extra={
                "route": script, "error": str(exc) or type(exc).__name__})
        except Exception:
            server.failures += 1
            log.exception("FastAGI route failed", extra={"route": script})
        finally:
            self._close()

    # -- endings ------------------------------------------------------------------------------

    def _expired(self, what: str) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self._fail("FastAGI request timed out", {"waiting_for": what})

    def _fail(self, message: str | None, extra: dict[str, Any]) -> None:
        if not self._failed:
            self._failed = True
            self.server.failures += 1
            if message:
                log.warning(message, extra=extra)
        self._close()

    def _close(self) -> None:
        if self.state != 3:
            self.state = 3
            self.timer.cancel()
            self.transport.close()


class FastAgiServer(Application):  # type: ignore[misc]  # panoramisk ships no types
    def __init__(self, *, header_timeout: float = 2.0, command_timeout: float = 2.0,
                 route_timeout: float = 5.0):
        super().__init__(default_encoding="utf-8", loop=asyncio.get_running_loop())
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.route_timeout = route_timeout
        self._server: asyncio.Server | None = None
        self.requests = 0
        self.failures = 0

    def add_route(self, path: str, endpoint: Endpoint | AnsweringEndpoint) -> None:
        fn = getattr(endpoint, "__call__", endpoint)  # noqa: B004 - instances with async __call__
        if not (hasattr(endpoint, "answer") or inspect.iscoroutinefunction(endpoint)
                or inspect.iscoroutinefunction(fn)):
            raise TypeError(f"FastAGI route {path!r}: the endpoint must be an async function "
                            "or have an answer() method")
        if path in self._route:
            raise ValueError(f"FastAGI route {path!r} already exists")
        self._route[path] = endpoint

    async def start(self, host: str, port: int) -> None:
        self._server = await self.loop.create_server(lambda: _AgiConnection(self), host, port,
                                                     backlog=1024, reuse_address=True)
        log.info("FastAGI listening", extra={"host": host, "port": port})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])
