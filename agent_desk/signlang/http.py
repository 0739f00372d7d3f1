"""The sign-language seat's public side (手语座席, docs/webrtc.md): anyone may start a video
call from /sign, without signing in, a few times per address.

Each call needs a ticket: 16 random bytes the service leaves on the node as a global variable
(AMI Setvar, the "call" privilege the service already has; astdb would need "system") and
the dialplan spends ([from-sign-language] reads and clears it). The page's
SIP password is the same for every guest, so it opens nothing by itself; a ticket not spent
within its time is removed. Tickets are counted per client address in Redis.

With ``[sign_language] record_video`` the seat's console uploads the call's video in pieces
while it is up (asr/video.py stores them sealed, the case's recordings list shows it, and
GET /api/recordings plays it with the audio's rules)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from aiohttp import web

from agent_desk.signlang.schemas import (
    CLOSED,
    PIECE,
    PIECE_MAX_BYTES,
    SEQ_MAX,
    TICKET,
    VideoClose,
)
from agent_desk.web.auth import Session
from agent_desk.web.deps import ConsoleDeps, VideoDesk
from agent_desk.web.middleware import RateLimited
from agent_desk.web.routes import Route, agent_of
from common.errors import DomainError
from common.secrets import sip_password

log = logging.getLogger(__name__)

GUEST = "sign-guest"  # the guests' endpoint (telephony/asterisk: SIGN_GUEST)
PREFIX = "HOTLINE_SIGN_"  # the tickets' global variables (the dialplan reads them)

ROUTES = [
    Route("POST", "/api/sign-language/call", "sign_language_call", (),
          "A ticket for one video call to the sign-language seat (no sign-in; limited per "
          "client address), with the page's SIP guest credentials and where to call",
          answer=TICKET, max_body=64),
    Route("PUT", "/api/sign-language/video/{number}/{seq}", "sign_language_piece", ("agent",),
          "A piece (from 0, in order) of the seat's video of its call (WebM, as the "
          "console's recorder gives it); a piece already stored is not stored again",
          upload=("video/webm", "application/octet-stream"), max_body=PIECE_MAX_BYTES,
          answer=PIECE),
    Route("POST", "/api/sign-language/video/{number}", "sign_language_video_close",
          ("agent",), "The end of the seat's video, with how many pieces were sent",
          VideoClose, answer=CLOSED),
]


class SignLanguageHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps
        self._expiries: set[asyncio.Task[None]] = set()

    async def h_sign_language_call(self, request: web.Request, sess: None, body: None
                                   ) -> web.StreamResponse:
        d, cfg = self.deps, self.deps.cfg
        node = cfg.sign_language_node()
        if node is None:
            raise DomainError("not_available", "the sign-language seat is not offered here")
        sl = cfg.sign_language
        key = f"{cfg.redis.prefix}:sign:calls:{request.remote or '-'}"
        count = await d.redis.incr(key)
        if count == 1:
            await d.redis.expire(key, sl.window_s)
        if count > sl.calls_per_address:
            ttl = await d.redis.ttl(key)
            raise RateLimited(max(1, int(ttl)), "too many video calls from this address; "
                                                "please try again later")
        ticket = secrets.token_hex(16)
        await d.ami_of(node).send({"Action": "Setvar", "Variable": PREFIX + ticket,
                                   "Value": "1"})
        task = asyncio.create_task(self._expire(node, ticket, sl.ticket_ttl_s))
        self._expiries.add(task)
        task.add_done_callback(self._expiries.discard)
        url = cfg.webrtc_url(node, request.host)
        host = url.split("/", 3)[2].rsplit(":", 1)[0]
        log.info("sign-language ticket issued", extra={"node": node})
        return web.json_response({
            "uri": f"sip:{GUEST}@{host}", "username": GUEST,
            "password": sip_password(cfg.sip_secret, GUEST), "ws_url": url,
            "target": f"sip:{sl.number}@{host}", "ticket": ticket, "expires_s": sl.ticket_ttl_s,
            "ice_servers": list(cfg.webrtc.ice_servers)})

    async def _expire(self, node: str, ticket: str, ttl: float) -> None:
        """A ticket not spent in time goes (the dialplan removes spent ones itself)."""
        await asyncio.sleep(ttl)
        with contextlib.suppress(Exception):
            await self.deps.ami_of(node).send({"Action": "Setvar",
                                               "Variable": PREFIX + ticket, "Value": ""},
                                              check=False)

    def _video(self) -> VideoDesk:
        if self.deps.video is None:
            raise DomainError("not_available", "video calls are not recorded here")
        return self.deps.video

    async def h_sign_language_piece(self, request: web.Request, sess: Session, body: bytes
                                    ) -> web.StreamResponse:
        seq = request.match_info["seq"]
        if not (seq.isascii() and seq.isdigit() and int(seq) <= SEQ_MAX):
            raise DomainError("invalid", f"seq: a whole number 0-{SEQ_MAX}")
        return web.json_response(await self._video().put(
            request.match_info["number"], agent_of(sess), int(seq), body))

    async def h_sign_language_video_close(self, request: web.Request, sess: Session,
                                          body: VideoClose) -> web.StreamResponse:
        return web.json_response(await self._video().close(
            request.match_info["number"], agent_of(sess), body.pieces))
