"""Errors as JSON, and the security headers of every answer.

Every refusal is a ``common.errors.DomainError``; its code picks the HTTP status from one
table (``STATUS``; any other code is 409: an action that does not fit the call or agent now).
Answers are JSON ``{"error": <code>, "message": <words>}``. A bug is logged and answered 500
without details.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent_desk.web.auth import TooManyAttempts
from common.errors import DomainError

log = logging.getLogger(__name__)

CONFLICT = 409
STATUS: dict[str, int] = {
    "bad_json": 400,
    "not_signed_in": 401, "session_expired": 401, "bad_credentials": 401,
    "forbidden": 403, "csrf": 403,
    "not_found": 404, "unknown_agent": 404, "unknown_destination": 404, "not_available": 404,
    "too_large": 413,
    "invalid": 422, "too_many": 422,
    "too_many_attempts": 429,
}

# The pages (not the API): no framing, no foreign scripts.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                               "media-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Frame-Options": "DENY",
}

Next = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(exc: DomainError) -> int:
    return STATUS.get(exc.code, CONFLICT)


def error_response(exc: DomainError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyAttempts) else {}
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
