"""Sign in, sign out, who am I, and the admin's user accounts (thin handlers over
agent_desk/web/auth.py)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiohttp import web

from agent_desk.models import PROVINCE
from agent_desk.users.schemas import LOGOUT, ME, TOO_MANY, USERS_ADD, LoginBody, UserBody
from agent_desk.web.auth import COOKIE, Session, TooManyAttempts
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.routes import EVERYONE, Route
from common.errors import DomainError

log = logging.getLogger(__name__)

ROUTES = [
    Route("POST", "/api/login", "login", (), "Sign in; sets the session cookie", LoginBody,
          answer=ME, more={"429": TOO_MANY}),
    Route("POST", "/api/logout", "logout", EVERYONE, "Sign out", answer=LOGOUT),
    Route("GET", "/api/me", "me", EVERYONE, "The signed-in user and the CSRF token",
          answer=ME),
    Route("POST", "/api/users", "users_add", ("admin",), "Create or reset a user", UserBody,
          answer=USERS_ADD),
]


class UsersHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_login(self, request: web.Request, sess: None, body: LoginBody
                      ) -> web.StreamResponse:
        d = self.deps
        address = request.remote or "?"
        wait = await d.limiter.blocked(body.username, address)
        if wait:
            raise TooManyAttempts(wait)
        user = await d.users.authenticate(body.username, body.password)
        if user is None:
            await d.limiter.failed(body.username, address)
            log.info("console sign-in failed", extra={"address": address})
            raise DomainError("bad_credentials", "wrong username or password")
        await d.limiter.succeeded(body.username, address)
        cookie, new = d.sessions.issue(user)
        resp = web.json_response(self._me(new, user.display_name))
        resp.set_cookie(COOKIE, cookie, max_age=d.web.session_ttl_s, httponly=True,
                        samesite="Strict", secure=d.web.secure_cookies, path="/")
        log.info("console sign-in", extra={"user": user.username, "role": user.role})
        return resp

    def _me(self, sess: Session, name: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"user": sess.user, "role": sess.role, "agent": sess.agent,
                               "csrf": self.deps.sessions.csrf(sess), "expires_at": sess.exp,
                               "see_numbers": sess.role in self.deps.web.see_numbers}
        if name:
            out["name"] = name
        if sess.agent:
            with contextlib.suppress(KeyError):
                a = self.deps.cfg.agent(sess.agent)
                out.update(agent_name=a.name, city=a.city)
        return out

    async def h_logout(self, request: web.Request, sess: Session, body: None
                       ) -> web.StreamResponse:
        await self.deps.gate.revoke(sess)
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def h_me(self, request: web.Request, sess: Session, body: None) -> web.StreamResponse:
        return web.json_response(self._me(sess))

    async def h_users_add(self, request: web.Request, sess: Session, body: UserBody
                          ) -> web.StreamResponse:
        if body.role == "agent" and (
                not body.agent_id or body.agent_id not in {a.id for a in self.deps.cfg.agents}):
            raise DomainError("invalid", "agent_id: an agent of the configuration is "
                                         "required for role agent")
        if body.city is not None and body.city != PROVINCE and body.city not in {
                c.id for c in self.deps.cfg.cities}:
            raise DomainError("invalid", "city: a city of the configuration or "
                                         f"{PROVINCE!r}")
        try:
            user = await self.deps.users.add(body.username, body.password, body.role,
                                             agent_id=body.agent_id,
                                             display_name=body.display_name, city=body.city)
        except ValueError as exc:
            raise DomainError("invalid", str(exc)) from None
        log.info("console user saved", extra={"user": body.username, "role": body.role,
                                              "by": sess.user})
        return web.json_response({"ok": True, "user": user.username, "role": user.role})
