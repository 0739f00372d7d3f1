"""What the web port may take from the event loop it shares with FastAGI routing.

``hotline serve`` answers the console and the router's FastAGI requests on one event loop:
every web request parsed and answered delays the routing answers waiting behind it
(bench/web_flood.py measures it). Two limits, both in [web] (common/config.py), 0 = off:

- ``anonymous_requests_per_s`` (burst ``anonymous_burst``): requests without a valid session
  (the login page and its files, ``/api/login``, ``/api/openapi.json``, ``/api/me`` of a
  stranger) per client address, a token bucket. Over it the answer is 429, held back
  ``HOLD_S`` first: a client that waits for each answer, as a flooding script does, then asks
  once a second per connection instead of as fast as the loop answers (a held request costs a
  timer, no CPU). Signed-in users are not counted here (they are known and audited).
- ``max_requests_in_flight``: requests being handled at once, whoever asks (not WebSockets,
  which live long and have their own cap); one more is answered 503, held the same way.

Nothing queues without bound: a refusal holds a timer, at most ``HELD_MAX`` of them; beyond,
the refusal is answered at once and the connection closed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent_desk.web.auth import COOKIE, Sessions
from common.config import WebSection

Next = Callable[[web.Request], Awaitable[web.StreamResponse]]

HOLD_S = 1.0  # how long a refused request is held before its answer
HELD_MAX = 10_000  # refusals held at once; beyond, answered at once and disconnected
ADDRESSES_MAX = 10_000  # buckets kept; beyond, the full ones are forgotten


@dataclass
class _Bucket:
    tokens: float
    at: float


class AddressRate:
    """A token bucket per client address: ``rate`` per second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, address: str) -> float:
        """0 if the address may go on (a token taken); else the seconds until it may."""
        now = self.clock()
        b = self._buckets.get(address)
        if b is None:
            if len(self._buckets) >= ADDRESSES_MAX:
                self._forget_full(now)
            b = self._buckets[address] = _Bucket(float(self.burst), now)
        b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: forget those.
        full = [a for a, b in self._buckets.items()
                if b.tokens + (now - b.at) * self.rate >= self.burst]
        for a in full:
            del self._buckets[a]
        if len(self._buckets) >= ADDRESSES_MAX:  # all busy (spoofed spread): start afresh
            self._buckets.clear()


def _refusal(status: int, code: str, message: str, retry_after: float) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status, headers={
        "Retry-After": str(max(1, math.ceil(retry_after))), "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


def limits(web_settings: Callable[[], WebSection], sessions: Sessions, *,
           hold_s: float = HOLD_S) -> Middleware:
    """The middleware (outermost: a refused request costs no more than its parsing)."""
    in_flight = 0
    held = 0
    rates: dict[tuple[int, int], AddressRate] = {}

    def rate_of(settings: WebSection) -> AddressRate | None:
        if settings.anonymous_requests_per_s <= 0:
            return None
        key = (settings.anonymous_requests_per_s, settings.anonymous_burst)
        if key not in rates:  # the settings changed (a test swaps them): start afresh
            rates.clear()
            rates[key] = AddressRate(*key)
        return rates[key]

    async def refuse(status: int, code: str, message: str, retry_after: float
                     ) -> web.Response:
        nonlocal held
        if held >= HELD_MAX:  # not even a timer more: answer and drop the connection
            resp = _refusal(status, code, message, retry_after)
            resp.force_close()
            return resp
        held += 1
        try:
            await asyncio.sleep(hold_s)
        finally:
            held -= 1
        return _refusal(status, code, message, max(0.0, retry_after - hold_s))

    @web.middleware
    async def middleware(request: web.Request, handler: Next) -> web.StreamResponse:
        nonlocal in_flight
        settings = web_settings()
        rate = rate_of(settings)
        if rate is not None and sessions.read(request.cookies.get(COOKIE))[0] is None:
            wait = rate.take(request.remote or "")
            if wait:
                return await refuse(429, "too_many_requests",
                                    "too many requests from this address; slow down", wait)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)  # lives as long as the socket: capped on its own
        cap = settings.max_requests_in_flight
        if cap and in_flight >= cap:
            return await refuse(503, "busy", "the console is busy; try again shortly", hold_s)
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return middleware
