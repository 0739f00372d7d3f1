"""The WebSocket feed: wallboard updates for supervisors, the agent's own events for agents
(wallboard.py does the fan-out). Mounted at /api/ws by the composition root.

A socket lives only as long as its session: each has a watcher that closes it when the
session expires (without waiting for the client to send anything) and re-checks the session
every ``RECHECK_S``; a sign-out or a change of the user (disabled, deleted, password or role
changed; announced on ``<prefix>:web:sessions`` by whichever process made it) closes the
user's sockets in every process at once. Close codes: 4001 expired, 4003 signed out or the
account changed. Auditors get no live feed. At most ``[web] max_sockets_per_user`` sockets
per user and process: a further one is refused (429 ``too_many_sockets``), the open ones are
kept (the page retries with a back-off).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from agent_desk.supervision.wallboard import Client, Wallboard
from agent_desk.web.auth import COOKIE, Session, SessionGate
from agent_desk.web.middleware import error_response
from common.errors import DomainError
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Who gets a live feed (auditors read the audit log only).
FEED_ROLES = ("agent", "supervisor", "admin")
RECHECK_S = 30.0  # a change missed on the channel (Redis away) still ends the socket


@dataclass(eq=False)
class Socket:
    ws: web.WebSocketResponse
    sess: Session
    watcher: asyncio.Task[None] | None = field(default=None)


class Feed:
    def __init__(self, gate: SessionGate, board: Wallboard, max_sockets: Callable[[], int]):
        self.gate = gate
        self.board = board
        self.max_sockets = max_sockets
        self.open: dict[int, set[Socket]] = {}  # by user id
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            await cancel_and_wait([self._listener], what="session listener")
        for sockets in list(self.open.values()):
            for s in list(sockets):
                await s.ws.close(code=1001, message=b"server shutting down")

    async def _listen(self) -> None:
        """Sign-outs and user changes from every process: re-check that user's sockets."""
        delay = 0.5
        while True:
            try:
                async with self.gate.redis.pubsub() as ps:
                    await ps.subscribe(self.gate.states.channel)
                    delay = 0.5
                    async for msg in ps.listen():
                        if msg.get("type") != "message":
                            continue
                        try:
                            doc = json.loads(msg["data"])
                            uid = int(doc["uid"])
                        except (ValueError, TypeError, KeyError):
                            continue
                        await self.recheck(uid, sid=doc.get("sid"))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: the watchers' periodic checks still run
                log.warning("session channel lost; resubscribing", exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def recheck(self, uid: int, *, sid: str | None = None) -> None:
        for s in list(self.open.get(uid, ())):
            if sid is not None and s.sess.sid == sid:
                await s.ws.close(code=4003, message=b"signed out")
                continue
            await self._check(s)

    async def _check(self, s: Socket) -> bool:
        try:
            await self.gate.check(s.sess)
        except DomainError as exc:
            code = 4001 if exc.code == "session_expired" else 4003
            await s.ws.close(code=code, message=exc.message.encode()[:120])
            return False
        return True

    async def _watch(self, s: Socket) -> None:
        """Close the socket at the session's expiry, re-checking it on the way."""
        while True:
            await asyncio.sleep(max(0.0, min(s.sess.exp - time.time(), RECHECK_S)))
            if not await self._check(s):
                return

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        try:
            sess = await self.gate.session_of(request.cookies.get(COOKIE))
            if sess.role not in FEED_ROLES:
                raise DomainError("forbidden", f"role {sess.role} gets no live feed "
                                               f"({', '.join(FEED_ROLES)} only)")
            if len(self.open.get(sess.uid, ())) >= self.max_sockets():
                raise DomainError("too_many_sockets", "too many open live feeds for this user; "
                                  "close another tab first")
        except DomainError as exc:
            return error_response(exc)
        origin = request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] != request.host:
            # Another site's page using the agent's cookie (cross-site WebSocket hijacking).
            return web.json_response({"error": "forbidden", "message": "cross-origin "
                                      "WebSocket refused"}, status=403)
        # No compression: wallboard updates are framed once and written to every socket.
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096, compress=False)
        await ws.prepare(request)

        async def overflow() -> None:
            await ws.close(code=4000, message=b"too slow: reconnect for a fresh snapshot")

        agent = sess.role == "agent"
        client = Client(ws.send_str, role=sess.role,
                        agent=sess.agent if agent else None, on_overflow=overflow,
                        transport=None if agent else request.transport)
        if agent:
            await ws.send_str(json.dumps({"type": "hello", "agent": sess.agent}))
        socket = Socket(ws, sess)
        self.open.setdefault(sess.uid, set()).add(socket)
        self.board.add(client, snapshot=not agent)
        socket.watcher = asyncio.create_task(self._watch(socket))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.board.remove(client)
            mine = self.open.get(sess.uid, set())
            mine.discard(socket)
            if not mine:
                self.open.pop(sess.uid, None)
            with contextlib.suppress(Exception):
                await cancel_and_wait([socket.watcher], what="socket watcher")
        return ws
