"""Users, passwords, sessions, CSRF and the login rate limit of the console.

- Passwords: scrypt (RFC 7914; n=2**14, r=8, p=1) with a 16-byte salt per user, stored as
  ``scrypt$n$r$p$salt$hash`` so parameters can be raised later.
- Sessions: a signed cookie ``hl_session`` = base64(JSON {uid, user, role, agent, exp, sid})
  + HMAC-SHA256 keyed by HKDF from HOTLINE_SESSION_SECRET. Nothing secret is in it; the
  expiry is inside the signed part, so an old cookie cannot be replayed past it.
- CSRF: every state-changing request must carry ``X-CSRF-Token`` equal to HMAC(secret, sid);
  the page reads it from ``GET /api/me``. A cross-site form cannot set the header.
- Login rate limit: failed attempts counted in Redis per username and per client address
  (each with its own limit: a whole call center may share one NAT address); a locked-out
  sign-in gets 429 with Retry-After, whatever the password.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
                       (now or time.time()) + self.ttl_s, secrets.token_urlsafe(12))
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


class SessionGate:
    """Who is asking: the signed cookie, refused once signed out (the revocation mark lives
    in Redis until the cookie would have expired: a copied cookie stays useless)."""

    def __init__(self, sessions: Sessions, redis: Redis, prefix: str):
        self.sessions = sessions
        self.redis = redis
        self.prefix = prefix

    def _revoked_key(self, sess: Session) -> str:
        return f"{self.prefix}:web:revoked:{sess.sid}"

    async def session_of(self, cookie: str | None) -> Session:
        sess, why = self.sessions.read(cookie)
        if sess is None:
            if why == "expired":
                raise DomainError("session_expired", "your session has expired; sign in again")
            raise DomainError("not_signed_in", "sign in first")
        if await self.redis.exists(self._revoked_key(sess)):
            raise DomainError("not_signed_in", "this session was signed out; sign in again")
        return sess

    async def revoke(self, sess: Session) -> None:
        ttl = int(sess.exp - time.time()) + 1
        if ttl > 0:
            await self.redis.set(self._revoked_key(sess), "1", ex=ttl)


class TooManyAttempts(DomainError):
    """A locked-out sign-in (429 with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too_many_attempts",
                         f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


class LoginLimiter:
    """At most ``attempts`` failed logins per username and ``address_attempts`` per client
    address in ``window_s`` (the window starts at the first failure)."""

    def __init__(self, redis: Redis, prefix: str, attempts: int, window_s: int,
                 address_attempts: int | None = None):
        self.redis = redis
        self.prefix = f"{prefix}:web:login"
        self.attempts = attempts
        self.address_attempts = address_attempts or attempts
        self.window_s = window_s

    def _keys(self, username: str, address: str) -> list[str]:
        user = hashlib.sha256(username.lower().encode()).hexdigest()[:24]
        return [f"{self.prefix}:u:{user}", f"{self.prefix}:a:{address}"]

    async def blocked(self, username: str, address: str) -> int:
        """Seconds to wait (0: may try)."""
        wait = 0
        for k, limit in zip(self._keys(username, address),
                            (self.attempts, self.address_attempts), strict=True):
            n = await self.redis.get(k)
            if n is not None and int(n) >= limit:
                wait = max(wait, 1, int(await self.redis.ttl(k)))
        return wait

    async def failed(self, username: str, address: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for k in self._keys(username, address):
            pipe.incr(k)
            pipe.expire(k, self.window_s, nx=True)
        await pipe.execute()

    async def succeeded(self, username: str, address: str) -> None:
        await self.redis.delete(self._keys(username, address)[0])


class Users:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def add(self, username: str, password: str, role: str, *, agent_id: str | None = None,
                  display_name: str = "") -> WebUser:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role == "agent" and not agent_id:
            raise ValueError("an agent user needs the agent's id")
        if len(password) < 8:
            raise ValueError("passwords need at least 8 characters")
        async with self.sessions() as s, s.begin():
            user = (await s.execute(select(WebUser).where(WebUser.username == username))
                    ).scalar_one_or_none()
            if user is None:
                user = WebUser(username=username)
                s.add(user)
            user.password_hash = hash_password(password)
            user.role, user.agent_id = role, agent_id
            user.display_name = display_name or username
            user.disabled = False
        return user

    async def authenticate(self, username: str, password: str) -> WebUser | None:
        async with self.sessions() as s:
            user = (await s.execute(select(WebUser).where(WebUser.username == username))
                    ).scalar_one_or_none()
        stored = user.password_hash if user is not None else _DUMMY
        ok = await asyncio.to_thread(verify_password, password, stored)
        if user is None or user.disabled or not ok:
            return None
        return user

    async def get(self, uid: int) -> WebUser | None:
        async with self.sessions() as s:
            return await s.get(WebUser, uid)
