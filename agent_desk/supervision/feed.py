"""The WebSocket feed: wallboard updates for supervisors, the agent's own events for agents
(wallboard.py does the fan-out). Mounted at /api/ws by the composition root."""

from __future__ import annotations

import json
import time

from aiohttp import WSMsgType, web

from agent_desk.supervision.wallboard import Client, Wallboard
from agent_desk.web.auth import COOKIE, SessionGate
from agent_desk.web.middleware import error_response
from common.errors import DomainError


class Feed:
    def __init__(self, gate: SessionGate, board: Wallboard):
        self.gate = gate
        self.board = board

    async def h_ws(self, request: web.Request) -> web.StreamResponse:
        try:
            sess = await self.gate.session_of(request.cookies.get(COOKIE))
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
        self.board.add(client, snapshot=not agent)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
                if time.time() > sess.exp:
                    await ws.close(code=4001, message=b"session expired")
                    break
        finally:
            self.board.remove(client)
        return ws
