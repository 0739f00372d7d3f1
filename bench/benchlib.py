"""What the benchmarks share: where results go, the shared Redis and PostgreSQL, printing a
result line, the machine's load, and one small AMI client.

Named ``benchlib``, not ``common``: a script run as ``python bench/x.py`` has bench/ first on
sys.path, so a bench/common.py would hide the repository's own ``common`` package.

The AMI client is raw on purpose: it works on bytes and parses no more of a message than it
needs (its first line, its ActionID), so it keeps up with tens of thousands of events a second
where the service's own client (telephony/ami.py) is what is being measured. It serves both as
a watcher (``events=False``: requests, CLI commands, queue status) and as a generator and
reference counter (``events=True``: actions written in bulk, events counted by type and by
wall-clock second)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PG_ADMIN = os.environ.get("HOTLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")

EOM = b"\r\n\r\n"  # the blank line that ends an AMI message


def emit(**doc: Any) -> None:
    """One result as a JSON line on stdout (what the benchmarks print and tests read)."""
    print(json.dumps(doc, ensure_ascii=False, default=str), flush=True)


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (a shared machine's timings vary)."""
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return []


def header(message: bytes, name: bytes) -> str | None:
    """One header's value in a raw AMI message (not its first line), or None."""
    i = message.find(b"\r\n" + name + b": ")
    if i < 0:
        return None
    j = message.find(b"\r\n", i + 2)
    return message[i + len(name) + 4: j if j >= 0 else len(message)].decode(errors="replace")


def fields(message: bytes) -> dict[str, str]:
    """A raw AMI message as a dict (the first value of a repeated header)."""
    out: dict[str, str] = {}
    for line in message.decode(errors="replace").split("\r\n"):
        k, sep, v = line.partition(": ")
        if sep:
            out.setdefault(k, v)
    return out


def action_bytes(action: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in action.items()).encode() + b"\r\n"


class _Pending:
    """An action waiting for its messages: done at its Response, or at the event ``until``
    (a list's Complete event) or an error."""

    def __init__(self, until: str | None) -> None:
        self.until = until
        self.messages: list[bytes] = []
        self.done: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()

    def add(self, message: bytes) -> None:
        self.messages.append(message)
        if self.done.done():
            return
        if message.startswith(b"Response: Error") or (
                self.until is None and message.startswith(b"Response: ")) or (
                self.until is not None and message.startswith(b"Event: " + self.until.encode())):
            self.done.set_result(self.messages)


class BenchAmi:
    """A plain AMI connection: login, a reader task, actions matched by ActionID; events
    (when asked for) counted, not parsed."""

    def __init__(self, host: str, port: int, user: str, secret: str, *, events: bool):
        self.addr = (host, port)
        self.user, self.secret, self.events = user, secret, events
        self.by_type: Counter[str] = Counter()
        self.per_second: Counter[int] = Counter()  # events by wall-clock second
        self.total = 0
        self.responses = 0  # replies to actions written with write() (not awaited)
        self.errors = 0
        self.error_samples: list[str] = []
        self.closed = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> BenchAmi:
        reader, self.writer = await asyncio.open_connection(*self.addr)
        await reader.readline()  # banner
        self.writer.write(action_bytes({
            "Action": "Login", "Username": self.user, "Secret": self.secret,
            "Events": "on" if self.events else "off", "ActionID": "login"}))
        reply = await reader.readuntil(EOM)
        if b"Success" not in reply:
            raise RuntimeError(f"AMI login refused: {reply[:200]!r}")
        self._task = asyncio.create_task(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                buf += data
                *messages, buf = buf.split(EOM)
                for m in messages:
                    self._message(m.lstrip(b"\r\n"))
        finally:
            self.closed.set()
            for p in self._pending.values():
                if not p.done.done():
                    p.done.set_exception(ConnectionError("AMI connection closed"))

    def _message(self, m: bytes) -> None:
        if self._pending:
            aid = header(m, b"ActionID")
            pending = self._pending.get(aid) if aid else None
            if pending is not None:
                pending.add(m)
                return
        if m.startswith(b"Event: "):
            end = m.find(b"\r\n")
            name = m[7:end] if end >= 0 else m[7:]
            self.by_type[name.decode(errors="replace")] += 1
            self.per_second[int(time.time())] += 1
            self.total += 1
        elif m.startswith(b"Response: "):
            self.responses += 1
            if m.startswith(b"Response: Error"):
                self.errors += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(m[:200].decode(errors="replace"))

    def write(self, data: bytes) -> None:
        """Actions already as bytes, not awaited (their replies are only counted)."""
        assert self.writer is not None
        self.writer.write(data)

    async def drain(self) -> None:
        assert self.writer is not None
        await self.writer.drain()

    async def request_raw(self, action: dict[str, str], *, until: str | None = None,
                          timeout: float = 10) -> list[bytes]:
        """Send an action and wait for its messages (up to the event ``until``, if given)."""
        aid = f"bench-{secrets.token_hex(4)}"
        pending = self._pending[aid] = _Pending(until)
        try:
            self.write(action_bytes({**action, "ActionID": aid}))
            await self.drain()
            return await asyncio.wait_for(pending.done, timeout)
        finally:
            del self._pending[aid]

    async def request(self, action: dict[str, str], *, until: str | None = None,
                      timeout: float = 10) -> list[dict[str, str]]:
        return [fields(m) for m in await self.request_raw(action, until=until, timeout=timeout)]

    async def queue_members(self, timeout: float = 60) -> list[dict[str, str]]:
        """QueueStatus: every queue membership (QueueMember events)."""
        msgs = await self.request({"Action": "QueueStatus"}, until="QueueStatusComplete",
                                  timeout=timeout)
        return [m for m in msgs if m.get("Event") == "QueueMember"]

    async def queue_summary(self) -> dict[str, dict[str, int]]:
        """QueueSummary: per queue, agents logged in and available, callers, longest wait."""
        msgs = await self.request({"Action": "QueueSummary"}, until="QueueSummaryComplete")
        return {m["Queue"]: {k: int(m.get(k, "0") or 0) for k in
                             ("LoggedIn", "Available", "Callers", "LongestHoldTime")}
                for m in msgs if m.get("Event") == "QueueSummary"}

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
