"""Users, passwords, sessions, CSRF and the login rate limit of the console.

- Passwords: scrypt (RFC 7914; n=2**14, r=8, p=1) with a 16-byte salt per user, stored as
  ``scrypt$n$r$p$salt$hash`` so parameters can be raised later.
- Sessions: a signed cookie ``hl_session`` = base64(JSON {uid, user, role, agent, exp, sid,
  ver}) + HMAC-SHA256 keyed by HKDF from HOTLINE_SESSION_SECRET. Nothing secret is in it; the
  expiry is inside the signed part, so an old cookie cannot be replayed past it. The cookie is
  not enough: every request also checks the user as stored now (``SessionGate``): it exists,
  is enabled, has the cookie's role and agent, and its session version is the cookie's (a
  password reset, role change or disabling raises it). The user's state is cached in Redis
  (``<prefix>:web:user:<uid>``), written by whoever changes the user and announced on
  ``<prefix>:web:sessions`` so every process closes that user's sockets at once.
- CSRF: every state-changing request must carry ``X-CSRF-Token`` equal to HMAC(secret, sid);
  the page reads it from ``GET /api/me``. A cross-site form cannot set the header.
- Login rate limit: attempts counted in Redis per username and per client address (each with
  its own limit: a whole call center may share one NAT address). An attempt is reserved
  atomically before the password is checked (one Lua script), so concurrent guesses cannot
  all get through; a success gives its reservation back. A locked-out sign-in gets 429 with
  Retry-After, whatever the password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.audit import Actor, Audit
from agent_desk.models import ROLES, WebUser
from common.errors import DomainError
from common.secrets import SESSION_CSRF, SESSION_SIGN, derive_key

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
COOKIE = "hl_session"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


# A hash to compare against when the user does not exist (same time either way).
_DUMMY = hash_password(secrets.token_urlsafe(12))


@dataclass(frozen=True)
class Session:
    uid: int
    user: str
    role: str
    agent: str | None
    exp: float
    sid: str
    ver: int = -1  # the user's session version when signed in (none: an older cookie)


@dataclass(frozen=True)
class ApiClient:
    """A department's own system, known by the API token an admin issued it
    (agent_desk/departments/tokens.py); it acts and is audited as the department."""

    department: str
    token_id: int
    label: str = ""
    role: str = "department"

    @property
    def user(self) -> str:
        """Its name in the audit log and on the case's timeline."""
        return f"api:{self.department}#{self.token_id}"


@dataclass(frozen=True)
class UserState:
    """What a session is checked against: the user as stored now."""

    uid: int
    user: str
    role: str
    agent: str | None
    disabled: bool
    ver: int

    @classmethod
    def of(cls, u: WebUser) -> UserState:
        return cls(u.id, u.username, u.role, u.agent_id, bool(u.disabled), u.session_version)


class Sessions:
    def __init__(self, secret: str, ttl_s: int):
        if len(secret) < 12:
            raise ValueError("the session secret must have at least 12 characters")
        # HKDF, a label each: a cookie's signature says nothing about the CSRF key.
        self._key = derive_key(secret, SESSION_SIGN)
        self._csrf_key = derive_key(secret, SESSION_CSRF)
        self.ttl_s = ttl_s

    def _sign(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()
                                        ).decode().rstrip("=")

    def issue(self, user: WebUser, now: float | None = None) -> tuple[str, Session]:
        sess = Session(user.id, user.username, user.role, user.agent_id,
                       (now or time.time()) + self.ttl_s, secrets.token_urlsafe(12),
                       user.session_version)
        body = base64.urlsafe_b64encode(json.dumps(sess.__dict__, separators=(",", ":"))
                                        .encode()).decode().rstrip("=")
        return f"{body}.{self._sign(body.encode())}", sess

    def read(self, cookie: str | None, now: float | None = None) -> tuple[Session | None, str]:
        """The session, or None and why ("missing", "invalid", "expired")."""
        if not cookie:
            return None, "missing"
        body, _, sig = cookie.partition(".")
        if not sig or not hmac.compare_digest(sig, self._sign(body.encode())):
            return None, "invalid"
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            doc: dict[str, Any] = json.loads(raw)
            sess = Session(**doc)
        except (ValueError, TypeError):
            return None, "invalid"
        if sess.exp < (now or time.time()):
            return None, "expired"
        return sess, "ok"

    def csrf(self, sess: Session) -> str:
        return hmac.new(self._csrf_key, sess.sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, sess: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(sess), token or "")


class UserStates:
    """The users' states in Redis, shared by every process: a cache of the database (filled
    with SET NX, so a stale read never overwrites a change) that whoever changes a user
    overwrites at once and announces on the sessions channel (``changed``)."""

    TTL_S = 60  # a change made without Redis (it was away) still counts within this

    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self.channel = f"{prefix}:web:sessions"

    def key(self, uid: int) -> str:
        return f"{self.prefix}:web:user:{uid}"

    @staticmethod
    def encode(state: UserState | None) -> str:
        return json.dumps(asdict(state) if state else {"gone": True})

    @staticmethod
    def decode(raw: str | bytes) -> UserState | Literal[False] | None:
        """The state, None for a user that does not exist, False if unreadable."""
        try:
            doc = json.loads(raw)
            return None if doc.get("gone") else UserState(**doc)
        except (ValueError, TypeError, AttributeError):
            return False

    async def fill(self, uid: int, state: UserState | None) -> None:
        await self.redis.set(self.key(uid), self.encode(state), ex=self.TTL_S, nx=True)

    async def changed(self, uid: int, state: UserState | None) -> None:
        """After the change is committed: every process sees it from the next request on,
        and closes the user's sockets now."""
        await self.redis.set(self.key(uid), self.encode(state), ex=self.TTL_S)
        await self.redis.publish(self.channel, json.dumps({"uid": uid}))


class SessionGate:
    """Who is asking: the signed cookie, refused once signed out (the revocation mark lives
    in Redis until the cookie would have expired: a copied cookie stays useless), once the
    user is gone, disabled or changed (``UserStates``), or when unused for
    ``idle_timeout_s``."""

    def __init__(self, sessions: Sessions, states: UserStates, users: Users, *,
                 idle_timeout_s: int = 0):
        self.sessions = sessions
        self.states = states
        self.users = users
        self.redis = states.redis
        self.prefix = states.prefix
        self.idle_timeout_s = idle_timeout_s

    def _revoked_key(self, sess: Session) -> str:
        return f"{self.prefix}:web:revoked:{sess.sid}"

    def _seen_key(self, sess: Session) -> str:
        return f"{self.prefix}:web:seen:{sess.sid}"

    def _seen_ttl(self, sess: Session) -> int:
        return self.idle_timeout_s or max(1, int(sess.exp - time.time()) + 1)

    async def session_of(self, cookie: str | None) -> Session:
        """The session of a request (which counts as activity for the idle timeout)."""
        sess, why = self.sessions.read(cookie)
        if sess is None:
            if why == "expired":
                raise DomainError("session_expired", "your session has expired; sign in again")
            raise DomainError("not_signed_in", "sign in first")
        return await self.check(sess, activity=True)

    async def check(self, sess: Session, *, activity: bool = False) -> Session:
        """The session still holds: not expired, not signed out, its user as it was. With
        ``activity``, also not idle too long, and the idle clock starts again."""
        if sess.exp < time.time():
            raise DomainError("session_expired", "your session has expired; sign in again")
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self._revoked_key(sess))
        pipe.get(self.states.key(sess.uid))
        if activity:
            pipe.getex(self._seen_key(sess), ex=self._seen_ttl(sess))
        revoked, raw, *seen = await pipe.execute()
        if revoked:
            raise DomainError("not_signed_in", "this session was signed out; sign in again")
        state = self.states.decode(raw) if raw is not None else False
        if state is False:
            state = await self.users.state(sess.uid)
            await self.states.fill(sess.uid, state)
        if state is None or state.user != sess.user:
            raise DomainError("not_signed_in", "this user no longer exists; sign in again")
        if state.disabled:
            raise DomainError("not_signed_in", "this user is disabled")
        if (state.ver, state.role, state.agent) != (sess.ver, sess.role, sess.agent):
            raise DomainError("not_signed_in", "your account was changed (password, role or "
                                               "state); sign in again")
        if activity and self.idle_timeout_s and seen[0] is None:
            raise DomainError("session_expired", "signed out after "
                              f"{self.idle_timeout_s // 60} minutes without use; sign in again")
        return sess

    async def started(self, sess: Session, user: WebUser) -> None:
        """A new session: its user's state as just read (a reused id's stale "gone" mark
        does not refuse it), and the idle clock."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.states.key(user.id), self.states.encode(UserState.of(user)),
                 ex=self.states.TTL_S)
        pipe.set(self._seen_key(sess), "1", ex=self._seen_ttl(sess))
        await pipe.execute()

    async def revoke(self, sess: Session) -> None:
        ttl = int(sess.exp - time.time()) + 1
        if ttl > 0:
            await self.redis.set(self._revoked_key(sess), "1", ex=ttl)
        await self.redis.publish(self.states.channel,
                                 json.dumps({"uid": sess.uid, "sid": sess.sid}))


class Users:
    """The console's accounts. Every change raises the session version where it must end
    the user's sessions, writes its audit entry in the same transaction (``actor``: who did
    it; the command line is ``system``), and is then announced through ``states``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession],
                 states: UserStates | None = None):
        self.sessions = sessions
        self.states = states

    async def _announce(self, changed: Iterable[tuple[int, UserState | None]]) -> None:
        if self.states is not None:
            for uid, state in changed:
                await self.states.changed(uid, state)

    async def _one(self, s: AsyncSession, username: str) -> WebUser | None:
        return (await s.execute(select(WebUser).where(WebUser.username == username))
                ).scalar_one_or_none()

    async def add(self, username: str, password: str, role: str, *, agent_id: str | None = None,
                  display_name: str = "", city: str | None = None,
                  department_id: str | None = None, actor: Actor | None = None) -> WebUser:
        """Create the user, or reset its password (and role, agent, name): its sessions end.
        ``city``: whose cases the user sees (a city id or "province"); None keeps an existing
        user's city (a new one: agent_desk/access.py's default)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role == "agent" and not agent_id:
            raise ValueError("an agent user needs the agent's id")
        if role == "department" and not department_id:
            raise ValueError("a department user needs the department's id")
        if len(password) < 8:
            raise ValueError("passwords need at least 8 characters")
        detail: dict[str, Any]
        async with self.sessions() as s, s.begin():
            user = await self._one(s, username)
            if user is None:
                user = WebUser(username=username, disabled=False,
                               session_version=secrets.randbelow(1 << 30))
                s.add(user)
                action, detail = "user.create", {"role": role}
            else:
                user.session_version += 1
                action, detail = "user.password", {}
                if user.role != role or user.agent_id != agent_id:
                    detail = {"role": [user.role, role], "agent": [user.agent_id, agent_id]}
            if role == "department":
                detail = {**detail, "department": department_id}
            user.password_hash = hash_password(password)
            user.role, user.agent_id = role, agent_id
            user.department_id = department_id if role == "department" else None
            user.display_name = display_name or username
            if city is not None:
                user.city = city
            if actor is not None:
                Audit.add(s, actor, action, None, {"user": username, **detail})
                if action == "user.password" and "role" in detail:
                    Audit.add(s, actor, "user.role", None, {"user": username, **detail})
            await s.flush()
            state = UserState.of(user)
        await self._announce([(state.uid, state)])
        return user

    async def set_disabled(self, username: str, disabled: bool, *, actor: Actor
                           ) -> UserState:
        """Disable (its sessions end at once) or enable a user."""
        async with self.sessions() as s, s.begin():
            user = await self._one(s, username)
            if user is None:
                raise DomainError("not_found", f"no user {username}")
            if bool(user.disabled) != disabled:
                user.disabled = disabled
                user.session_version += 1
            Audit.add(s, actor, "user.disable" if disabled else "user.enable", None,
                      {"user": username})
            await s.flush()
            state = UserState.of(user)
        await self._announce([(state.uid, state)])
        return state

    async def delete(self, username: str, *, actor: Actor) -> None:
        async with self.sessions() as s, s.begin():
            user = await self._one(s, username)
            if user is None:
                raise DomainError("not_found", f"no user {username}")
            uid = user.id
            await s.execute(delete(WebUser).where(WebUser.id == uid))
            Audit.add(s, actor, "user.delete", None, {"user": username})
        await self._announce([(uid, None)])

    async def authenticate(self, username: str, password: str) -> WebUser | None:
        async with self.sessions() as s:
            user = await self._one(s, username)
        stored = user.password_hash if user is not None else _DUMMY
        ok = await asyncio.to_thread(verify_password, password, stored)
        if user is None or user.disabled or not ok:
            return None
        return user

    async def get(self, uid: int) -> WebUser | None:
        async with self.sessions() as s:
            return await s.get(WebUser, uid)

    async def state(self, uid: int) -> UserState | None:
        user = await self.get(uid)
        return UserState.of(user) if user is not None else None
