"""API tokens of the departments' own systems: issued by an admin (shown once), stored as
their SHA-256, revocable at once, and rate-limited per token (a Redis counter per minute,
shared by every web process).

A request's ``Authorization: Bearer <token>`` is looked up on every request (no cache: a
revoked token or a deactivated department is refused from the next request on) and answers
the ``ApiClient`` the handlers act as: the department, audited as ``api:<department>#<id>``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.audit import Actor, Audit
from agent_desk.departments.models import DepartmentToken
from agent_desk.web.auth import ApiClient
from agent_desk.web.middleware import RateLimited
from cases.loop.models import Department
from common.db import utcnow
from common.errors import DomainError

PREFIX = "dpt_"  # tells a department token apart in logs and secret scanners
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None if there is none)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(PREFIX) or len(value) > 100:
        return None
    return value


class DepartmentTokens:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], redis: Redis, prefix: str,
                 per_minute: Callable[[], int], *, clock: Callable[[], datetime] = utcnow):
        self.sessions = sessions
        self.redis = redis
        self.prefix = prefix
        self.per_minute = per_minute
        self.clock = clock

    @staticmethod
    def _row(t: DepartmentToken) -> dict[str, Any]:
        def iso(v: datetime | None) -> str | None:
            return v.astimezone(UTC).isoformat() if v else None

        return {"id": t.id, "department": t.department_id, "label": t.label, "hint": t.hint,
                "created_at": iso(t.created_at), "created_by": t.created_by,
                "revoked_at": iso(t.revoked_at), "revoked_by": t.revoked_by,
                "last_used_at": iso(t.last_used_at)}

    async def issue(self, department: str, label: str, actor: Actor) -> dict[str, Any]:
        """A new token for the department: the answer holds it, in clear, this once."""
        token = PREFIX + secrets.token_urlsafe(32)
        async with self.sessions() as s, s.begin():
            dept = await s.get(Department, department)
            if dept is None:
                raise DomainError("not_found", f"no department {department}")
            if not dept.active:
                raise DomainError("conflict", f"department {department} is deactivated")
            row = DepartmentToken(department_id=department, label=label,
                                  token_hash=token_hash(token), hint=token[:10],
                                  created_at=self.clock(), created_by=actor.user)
            s.add(row)
            await s.flush()
            Audit.add(s, actor, "token.issue", None,
                      {"department": department, "token": row.id, "label": label})
            out = self._row(row)
        return {**out, "token": token}

    async def tokens(self, department: str) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = (await s.execute(select(DepartmentToken).where(
                DepartmentToken.department_id == department).order_by(DepartmentToken.id))
            ).scalars().all()
        return [self._row(t) for t in rows]

    async def revoke(self, department: str, token_id: int, actor: Actor) -> dict[str, Any]:
        """Refused from the next request on (every request looks the token up)."""
        async with self.sessions() as s, s.begin():
            row = await s.get(DepartmentToken, token_id)
            if row is None or row.department_id != department:
                raise DomainError("not_found", f"no token {token_id} of {department}")
            if row.revoked_at is None:
                row.revoked_at, row.revoked_by = self.clock(), actor.user
                Audit.add(s, actor, "token.revoke", None,
                          {"department": department, "token": row.id})
            await s.flush()
            return self._row(row)

    async def client(self, authorization: str | None) -> ApiClient:
        """Who the request is, by its bearer token; refused (401) when the token is unknown,
        revoked or its department deactivated, and (429) when over its rate."""
        token = bearer(authorization)
        if token is None:
            raise DomainError("bad_token", "an API token is needed: Authorization: Bearer "
                                           f"{PREFIX}...")
        now = self.clock()
        async with self.sessions() as s:
            row = (await s.execute(select(DepartmentToken, Department.active).join(
                Department, Department.id == DepartmentToken.department_id).where(
                DepartmentToken.token_hash == token_hash(token)))).first()
        if row is None or row[0].revoked_at is not None or not row[1]:
            raise DomainError("bad_token", "this API token is unknown or revoked")
        t: DepartmentToken = row[0]
        await self._rate(t.id)
        if t.last_used_at is None or now - t.last_used_at >= TOUCH_EVERY:
            async with self.sessions() as s, s.begin():
                fresh = await s.get(DepartmentToken, t.id)
                if fresh is not None:
                    fresh.last_used_at = now
        return ApiClient(t.department_id, t.id, t.label)

    async def _rate(self, token_id: int) -> None:
        limit = self.per_minute()
        if limit <= 0:
            return
        minute = int(time.time() // 60)
        key = f"{self.prefix}:dept:rate:{token_id}:{minute}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 120)
        used, _ = await pipe.execute()
        if int(used) > limit:
            wait = max(1, 60 - int(time.time()) % 60)
            raise RateLimited(wait, f"too many requests with this token; try again in {wait} s")
