"""Sign in, sign out, who am I, and the admin's user accounts (thin handlers over
agent_desk/web/auth.py)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiohttp import web

from agent_desk.audit import Actor
from agent_desk.models import PROVINCE
from agent_desk.users.schemas import (
    LOGOUT,
    ME,
    TOO_MANY,
    USER_STATE,
    USERS_ADD,
    LoginBody,
    UserBody,
    UserStateBody,
)
from agent_desk.web.auth import COOKIE, Session
from agent_desk.web.deps import ConsoleDeps
from agent_desk.web.login_limits import TooManyAttempts
from agent_desk.web.routes import EVERYONE, OK, Route, actor
from common.errors import DomainError

log = logging.getLogger(__name__)

ROUTES = [
    Route("POST", "/api/login", "login", (), "Sign in; sets the session cookie", LoginBody,
          answer=ME, more={"429": TOO_MANY}),
    Route("POST", "/api/logout", "logout", EVERYONE, "Sign out", answer=LOGOUT),
    Route("GET", "/api/me", "me", EVERYONE, "The signed-in user and the CSRF token",
          answer=ME),
    Route("POST", "/api/users", "users_add", ("admin",),
          "Create a user, or reset its password, role and agent (its sessions end); a "
          "department user belongs to one department (department_id)", UserBody,
          answer=USERS_ADD),
    Route("POST", "/api/users/{user}/state", "user_state", ("admin",),
          "Disable a user (its sessions and sockets end at once) or enable it again",
          UserStateBody, answer=USER_STATE),
    Route("DELETE", "/api/users/{user}", "user_delete", ("admin",),
          "Delete a user (its sessions and sockets end at once)", answer=OK),
]


class UsersHttp:
    def __init__(self, deps: ConsoleDeps):
        self.deps = deps

    async def h_login(self, request: web.Request, sess: None, body: LoginBody
                      ) -> web.StreamResponse:
        d = self.deps
        address = request.remote or "?"
        # The attempt is taken before the password is checked: concurrent guesses count.
        wait = await d.limiter.reserve(body.username, address)
        if wait:
            raise TooManyAttempts(wait)
        user = await d.users.authenticate(body.username, body.password)
        if user is None:
            log.info("console sign-in failed", extra={"address": address})
            await d.audit.record(Actor(body.username, "none", address),
                                 "session.signin_failed")
            raise DomainError("bad_credentials", "wrong username or password")
        await d.limiter.succeeded(body.username, address)
        cookie, new = d.sessions.issue(user)
        await d.gate.started(new, user)
        await d.audit.record(Actor(user.username, user.role, address), "session.signin")
        resp = web.json_response(self._me(new, user.display_name))
        resp.set_cookie(COOKIE, cookie, max_age=d.web.session_ttl_s, httponly=True,
                        samesite="Strict", secure=d.web.secure_cookies, path="/")
        log.info("console sign-in", extra={"user": user.username, "role": user.role})
        return resp

    def _me(self, sess: Session, name: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"user": sess.user, "role": sess.role, "agent": sess.agent,
                               "csrf": self.deps.sessions.csrf(sess), "expires_at": sess.exp,
                               "see_numbers": sess.role in self.deps.web.see_numbers,
                               # The console's "today" is the hotline's, not the browser's.
                               "timezone": self.deps.cfg.service.timezone}
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
        await self.deps.audit.record(actor(sess, request), "session.signout")
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
        if body.role == "department":
            known = {d.id for d in await self.deps.loop.departments(active_only=False)
                     } if self.deps.loop is not None else set()
            if body.department_id not in known:
                raise DomainError("invalid", "department_id: a department of the directory "
                                             "is required for role department")
        if body.city is not None and body.city != PROVINCE and body.city not in {
                c.id for c in self.deps.cfg.cities}:
            raise DomainError("invalid", "city: a city of the configuration or "
                                         f"{PROVINCE!r}")
        try:
            user = await self.deps.users.add(body.username, body.password, body.role,
                                             agent_id=body.agent_id,
                                             display_name=body.display_name, city=body.city,
                                             department_id=body.department_id,
                                             actor=actor(sess, request))
        except ValueError as exc:
            raise DomainError("invalid", str(exc)) from None
        log.info("console user saved", extra={"user": body.username, "role": body.role,
                                              "by": sess.user})
        return web.json_response({"ok": True, "user": user.username, "role": user.role})

    def _username(self, request: web.Request, sess: Session) -> str:
        name = request.match_info["user"]
        if len(name) > 64:
            raise DomainError("not_found", "no such user")
        if name == sess.user:
            raise DomainError("forbidden", "admins may not disable or delete themselves")
        return name

    async def h_user_state(self, request: web.Request, sess: Session, body: UserStateBody
                           ) -> web.StreamResponse:
        state = await self.deps.users.set_disabled(self._username(request, sess),
                                                   body.disabled, actor=actor(sess, request))
        log.info("console user state", extra={"user": state.user, "disabled": state.disabled,
                                              "by": sess.user})
        return web.json_response({"ok": True, "user": state.user, "disabled": state.disabled})

    async def h_user_delete(self, request: web.Request, sess: Session, body: None
                            ) -> web.StreamResponse:
        name = self._username(request, sess)
        await self.deps.users.delete(name, actor=actor(sess, request))
        log.info("console user deleted", extra={"user": name, "by": sess.user})
        return web.json_response({"ok": True})
