"""What the web port may take from the event loop it shares with FastAGI routing.

``hotline serve`` answers the console and the router's FastAGI requests on one event loop:
every web request parsed and answered delays the routing answers waiting behind it
(bench/web_flood.py measures it). Two limits, both in [web] (common/config.py), 0 = off:

- ``anonymous_requests_per_s`` (burst ``anonymous_burst``): requests without a valid session
  (the login page and its files, ``/api/login``, ``/api/openapi.json``, ``/api/me`` of a
  stranger) per client address, a token bucket. Over it the answer is 429, held back until the
  address would have had a token again (at most ``HOLD_MAX_S``): a client that waits for each
  answer, as a flooding script does, then asks at the allowed rate instead of as fast as the
  loop answers. Signed-in users are not counted here (they are known and audited).
- ``max_requests_in_flight``: requests being handled or held at once, whoever asks; one more is
  answered 503 at once and its connection closed (nothing queues without bound).
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

HOLD_S = 1.0  # how long a refused request is held before its 429
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


def limits(web_settings: Callable[[], WebSection], sessions: Sessions) -> Middleware:
    """The middleware (outermost: a refused request costs no more than its parsing)."""
    in_flight = 0
    rates: dict[tuple[int, int], AddressRate] = {}

    def rate_of(settings: WebSection) -> AddressRate | None:
        if settings.anonymous_requests_per_s <= 0:
            return None
        key = (settings.anonymous_requests_per_s, settings.anonymous_burst)
        if key not in rates:  # the settings changed (a test swaps them): start afresh
            rates.clear()
            rates[key] = AddressRate(*key)
        return rates[key]

    @web.middleware
    async def middleware(request: web.Request, handler: Next) -> web.StreamResponse:
        nonlocal in_flight
        settings = web_settings()
        cap = settings.max_requests_in_flight
        if cap and in_flight >= cap:
            resp = _refusal(503, "busy", "the console is busy; try again shortly", 1)
            resp.force_close()  # the connection goes too: a new one has to be accepted first
            return resp
        in_flight += 1
        try:
            rate = rate_of(settings)
            if rate is not None and sessions.read(request.cookies.get(COOKIE))[0] is None:
                wait = rate.take(request.remote or "")
                if wait:
                    await asyncio.sleep(HOLD_S)
                    return _refusal(429, "too_many_requests",
                                    "too many requests from this address; slow down",
                                    max(0.0, wait - HOLD_S))
            return await handler(request)
        finally:
            in_flight -= 1

    return middleware
