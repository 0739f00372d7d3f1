"""Errors as JSON, the security headers of every answer, and who the client is.

Every refusal is a ``common.errors.DomainError``; its code picks the HTTP status from one
table (``STATUS``; any other code is 409: an action that does not fit the call or agent now).
Answers are JSON ``{"error": <code>, "message": <words>}``. A bug is logged and answered 500
without details.

Behind a reverse proxy every request comes from the proxy: ``client_address`` takes the
client from ``X-Forwarded-For`` when (and only when) the peer is one of ``[web]
trusted_proxies``, so the login limit, the /metrics loopback rule and the audit log see the
real client (``request.remote`` is replaced); any other peer's header is ignored.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent_desk.web.login_limits import TooManyAttempts
from common.errors import DomainError

log = logging.getLogger(__name__)

CONFLICT = 409
STATUS: dict[str, int] = {
    "bad_json": 400,
    "not_signed_in": 401, "session_expired": 401, "bad_credentials": 401, "bad_token": 401,
    "forbidden": 403, "csrf": 403,
    "not_found": 404, "unknown_agent": 404, "unknown_destination": 404, "not_available": 404,
    "too_large": 413,
    "invalid": 422, "too_many": 422,
    "too_many_attempts": 429, "too_many_sockets": 429, "rate_limited": 429,
    "calendar_not_covered": 503, "unavailable": 503,
}

CSP = ("default-src 'self'; connect-src 'self' {ws}; media-src 'self'; "
       "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")


HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


def page_headers(host: str, phone: Sequence[str] = ()) -> dict[str, str]:
    """The pages' headers (not the API's): no framing, no foreign scripts, and connections
    only to the console itself (its WebSocket on the same host, ws: or wss:) and to the
    Asterisk nodes' secure WebSockets of the console's phone (``phone``: wss URLs)."""
    # The Host header is the client's: only a host[:port] goes into the header.
    ws = f"ws://{host} wss://{host}" if HOST.fullmatch(host or "") else ""
    for url in phone:
        origin = url.split("/", 3)[:3]  # wss://host:port
        if len(origin) == 3 and origin[0] == "wss:" and HOST.fullmatch(origin[2]):
            ws = f"{ws} wss://{origin[2]}".strip()
    return {"Content-Security-Policy": CSP.format(ws=ws).replace("'self' ;", "'self';"),
            "X-Frame-Options": "DENY"}


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def forwarded_client(peer: str | None, forwarded_for: list[str], trusted: Networks
                     ) -> str | None:
    """The client's address: the peer, unless the peer is a trusted proxy; then the
    X-Forwarded-For hops are read from the right (the nearest first), past every trusted
    proxy, to the first address that is not one. A hop that is not an address stops the
    walk at the last good one (the client cannot slip a forged value past the proxy)."""
    ip = _ip(peer or "")
    if ip is None or not any(ip in n for n in trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",")]
    client = peer
    for hop in reversed(hops):
        hop_ip = _ip(hop)
        if hop_ip is None:
            break
        client = str(hop_ip)
        if not any(hop_ip in n for n in trusted):
            break
    return client


def client_address(trusted: Callable[[], Sequence[str]]) -> Middleware:
    """``request.remote`` is the client (through trusted proxies only)."""
    cache: dict[tuple[str, ...], Networks] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Next) -> web.StreamResponse:
        cidrs = tuple(trusted())
        if not cidrs:
            return await handler(request)
        nets = cache.get(cidrs)
        if nets is None:
            nets = cache[cidrs] = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        client = forwarded_client(request.remote, request.headers.getall("X-Forwarded-For", []),
                                  nets)
        if client is not None and client != request.remote:
            request = request.clone(remote=client)
        return await handler(request)

    return middleware

Next = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(exc: DomainError) -> int:
    return STATUS.get(exc.code, CONFLICT)


class RateLimited(DomainError):
    """Too many requests of one kind from one client, number or token (429 with
    Retry-After); the message says which, in words for whoever asked."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__("rate_limited", message)
        self.retry_after = max(1, retry_after)


def error_response(exc: DomainError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(
        exc, TooManyAttempts | RateLimited) else {}
    if exc.code == "bad_token":
        headers["WWW-Authenticate"] = 'Bearer realm="hotline"'
    return web.json_response({"error": exc.code, "message": exc.message},
                             status=status_of(exc), headers=headers)


def errors(max_body_bytes: Callable[[], int]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Next) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except DomainError as exc:
            return error_response(exc)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "too_large", "message":
                                      f"the body is larger than {max_body_bytes()} bytes"},
                                     status=413)
        except web.HTTPException as exc:
            if not request.path.startswith("/api/") or exc.status < 400:
                raise
            keep = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
            return web.json_response({"error": exc.reason.lower().replace(" ", "_"),
                                      "message": exc.text or exc.reason}, status=exc.status,
                                     headers=keep)
        except Exception:
            log.exception("console request failed", extra={"path": request.path})
            return web.json_response({"error": "internal", "message":
                                      "internal error (logged)"}, status=500)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return middleware
