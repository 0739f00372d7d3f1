"""The web app: agent console, supervisor wallboard and their HTTP/WebSocket API (aiohttp).

Built from explicit collaborators (``build_app(ConsoleDeps)``, assembled by the composition
root), so the same app runs inside ``hotline serve`` and alone in tests. Every feature
declares its routes once (``<feature>/http.py``: roles, body model, query, answer schema);
this module mounts them behind the common checks, and the same declarations give the OpenAPI
description at ``/api/openapi.json``. See docs/console.md.

Errors are JSON ``{"error": <code>, "message": <words>}`` with a 4xx status (middleware.py):
400 bad JSON, 401 not signed in / session expired, 403 wrong role or missing CSRF token, 404
unknown id, 409 an action that does not fit the call or agent now, 413 body too large, 422
invalid fields, 429 too many logins or too many requests without a session (limits.py), 503
too many requests at once. A request that fails validation changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from agent_desk import metrics
from agent_desk.web import limits, middleware, openapi
from agent_desk.web.auth import COOKIE, Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import (
    SCHEMAS,
    Body,
    Handler,
    Route,
    header_problems,
    query_problems,
    read_body,
    read_upload,
)
from common.config import WebSection
from common.errors import DomainError
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent.parent / "static"
RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGES = ("login", "console", "wallboard", "cases", "supervision", "departments",
         "reports", "knowledge", "quality")


@dataclass(frozen=True)
class Feature:
    """One room's part of the API: its route declarations, the object serving them (built
    from the collaborators; method ``h_<route name>``) and the answer schemas it names."""

    routes: Sequence[Route]
    serve: Callable[[ConsoleDeps], object]
    schemas: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    # Pages of the room served to anyone, without signing in (agent_desk/static/<page>.html
    # at /<page>): the public intake form.
    public_pages: Sequence[str] = ()


def description(features: Sequence[Feature]) -> bytes:
    """The OpenAPI description of these features (built once per app: the declarations do
    not change at run time)."""
    routes = [r for f in features for r in f.routes]
    components = {**SCHEMAS, **{k: v for f in features for k, v in f.schemas.items()}}
    return json.dumps(openapi.describe(routes, components)).encode()


def guarded(route: Route, handler: Handler, deps: ConsoleDeps
            ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler behind the route's checks: session and role, CSRF on changes, the query
    against its description, the body against its model."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        sess: Session | None = None
        if route.roles:
            sess = await deps.gate.session_of(request.cookies.get(COOKIE))
            if sess.role not in route.roles:
                raise DomainError("forbidden", f"role {sess.role} may not do this "
                                               f"({', '.join(route.roles)} only)")
            if route.method != "GET" and not deps.sessions.check_csrf(
                    sess, request.headers.get("X-CSRF-Token")):
                raise DomainError("csrf", "missing or wrong X-CSRF-Token header")
        if route.query and (problems := query_problems(route, request.query)):
            raise DomainError("invalid", "query: " + "; ".join(problems))
        if (route.headers or route.optional_headers) and (
                problems := header_problems(route, request.headers)):
            raise DomainError("invalid", "headers: " + "; ".join(problems))
        body: Body | bytes | None = None
        limit = min(deps.web.max_body_bytes, route.max_body or deps.web.max_body_bytes)
        if route.upload:
            body = await read_upload(request, route)
        elif route.body is not None:
            body = await read_body(request, route.body, limit)
        elif route.method != "GET" and request.can_read_body:
            # No body expected: still enforce the size limit and reject garbage.
            raw = await request.read()
            if raw.strip() not in (b"", b"{}", b"null"):
                await read_body(request, Body, limit, raw)
        return await handler(request, sess, body)

    return wrapped


async def _signed_in(deps: ConsoleDeps, request: web.Request) -> Session | None:
    try:
        return await deps.gate.session_of(request.cookies.get(COOKIE))
    except DomainError:
        return None


def _page(deps: ConsoleDeps, name: str, *, public: bool = False
          ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        if not public and name != "login" and await _signed_in(deps, request) is None:
            raise web.HTTPFound("/login")
        resp = web.FileResponse(STATIC / f"{name}.html")
        cfg = deps.cfg
        phone = [cfg.webrtc_url(n.id, request.host) for n in cfg.nodes
                 if cfg.webrtc_on(n.id)]
        resp.headers.update(middleware.page_headers(request.host, phone))
        return resp
    return page


def cookie_warning(settings: WebSection) -> str | None:
    """Why the session cookie is at risk, if it is: sent without ``Secure`` from an address
    other than the loopback (anyone on the network path can read it over plain HTTP)."""
    if settings.secure_cookies:
        return None
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if loopback:
        return None
    return (f"[web] host = {settings.host!r} is not the loopback and secure_cookies is off: "
            "session cookies travel in clear; serve the console through an HTTPS proxy and "
            "set secure_cookies = true")


def build_app(deps: ConsoleDeps, features: Sequence[Feature],
              sockets: Mapping[str, RawHandler] | None = None
              ) -> tuple[web.Application, ConsoleDeps]:
    """The app for these features (the composition root chooses them, hotline/desk.py);
    ``sockets``: WebSocket endpoints by path (the wallboard feed)."""
    # The client first (through trusted proxies), then the limits: a request they refuse
    # costs the shared loop no more than its parsing.
    app = web.Application(middlewares=[
        middleware.client_address(lambda: deps.web.trusted_proxies),
        limits.limits(lambda: deps.web, deps.sessions),
        middleware.errors(lambda: deps.web.max_body_bytes)],
        client_max_size=deps.web.max_body_bytes)
    for feature in features:
        served = feature.serve(deps)
        for r in feature.routes:
            handler: Handler = getattr(served, f"h_{r.name}")
            # A recording's url_name may hold folders ("2026/11/22/<case>-mix.wav").
            app.router.add_route(r.method, r.path.replace("{name}", "{name:.+}"),
                                 guarded(r, handler, deps))

    described = description(features)

    async def h_openapi(request: web.Request) -> web.StreamResponse:
        return web.Response(body=described, content_type="application/json")

    async def h_metrics(request: web.Request) -> web.StreamResponse:
        """Prometheus scrape (agent_desk/metrics.py): loopback, or the metrics token."""
        if not metrics.allowed(request.remote, request.headers.get("Authorization"),
                               os.environ.get("HOTLINE_METRICS_TOKEN")):
            raise DomainError("forbidden", "metrics are served to the loopback or with the "
                                           "bearer token in HOTLINE_METRICS_TOKEN")
        return web.Response(body=await deps.exposition(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST,
                                     "X-Content-Type-Options": "nosniff"})

    async def h_index(request: web.Request) -> web.StreamResponse:
        sess = await _signed_in(deps, request)
        if sess is None:
            raise web.HTTPFound("/login")
        raise web.HTTPFound({"agent": "/console", "auditor": "/api/audit",
                             "department": "/departments"}.get(sess.role, "/wallboard"))

    app.router.add_get("/api/openapi.json", h_openapi)
    app.router.add_get("/metrics", h_metrics)
    for path, socket in (sockets or {}).items():
        app.router.add_get(path, socket)
    app.router.add_get("/", h_index)
    for page in PAGES:
        app.router.add_get(f"/{page}", _page(deps, page))
    for feature in features:
        for page in feature.public_pages:
            app.router.add_get(f"/{page}", _page(deps, page, public=True))
    app.router.add_static("/static", STATIC, show_index=False)

    sealer: list[asyncio.Task[None]] = []

    async def start(_app: web.Application) -> None:
        if (warning := cookie_warning(deps.web)) is not None:
            log.warning(warning)
        await deps.board.start()
        sealer.append(asyncio.create_task(deps.audit.sealer()))

    async def stop(_app: web.Application) -> None:
        await cancel_and_wait(sealer, what="audit sealer")
        await deps.board.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app, deps
