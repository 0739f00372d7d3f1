"""The channels' API tokens: issued by an admin (``POST /api/intake/tokens`` or ``hotline
intake token --channel wechat``), shown once, stored as SHA-256, revocable. A request names
its token in ``Authorization: Bearer <token>``; the token says the channel, so a channel
sees and sends only its own cases.

(The departments' tokens, agent_desk/departments, work alike; the two may share this code
later.)"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.audit import Actor, Audit
from agent_desk.intake.models import API_CHANNELS, IntakeToken
from common.errors import DomainError

PREFIX = "hli"
# last_used_at is written at most this often (not a database write per request).
TOUCH_EVERY = timedelta(minutes=1)


class BadToken(DomainError):
    def __init__(self) -> None:
        super().__init__("bad_token", "API 令牌无效或已吊销（the API token is missing, "
                                      "unknown or revoked: Authorization: Bearer <token>）")


@dataclass(frozen=True)
class Caller:
    """Who sends a channel request: its token and channel."""

    token_id: int
    channel: str

    @property
    def actor(self) -> Actor:
        return Actor(f"channel:{self.channel}:{self.token_id}", "channel")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > 200:
        return None
    return value


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


def as_dict(t: IntakeToken) -> dict[str, Any]:
    return {"id": t.id, "channel": t.channel, "name": t.name, "hint": t.hint,
            "created_at": _iso(t.created_at), "created_by": t.created_by,
            "revoked_at": _iso(t.revoked_at), "last_used_at": _iso(t.last_used_at)}


class ChannelTokens:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions

    async def issue(self, channel: str, name: str, actor: Actor) -> tuple[dict[str, Any], str]:
        """A new token for the channel: its row, and the token (shown this once only)."""
        if channel not in API_CHANNELS:
            raise DomainError("invalid", f"channel: one of {', '.join(API_CHANNELS)}")
        token = f"{PREFIX}_{channel}_{secrets.token_urlsafe(32)}"
        async with self.sessions() as s, s.begin():
            row = IntakeToken(channel=channel, name=name.strip()[:64],
                              token_hash=token_hash(token),
                              hint=token[:len(PREFIX) + len(channel) + 6] + "…",
                              created_at=datetime.now(UTC), created_by=actor.user)
            s.add(row)
            await s.flush()
            Audit.add(s, actor, "intake.token_issue", None,
                      {"token": row.id, "channel": channel})
            return as_dict(row), token

    async def list(self) -> list[dict[str, Any]]:
        async with self.sessions() as s:
            rows = (await s.execute(select(IntakeToken).order_by(IntakeToken.id))).scalars()
            return [as_dict(t) for t in rows]

    async def revoke(self, token_id: int, actor: Actor) -> dict[str, Any]:
        """Revoked at once (every request checks); revoking twice changes nothing."""
        async with self.sessions() as s, s.begin():
            row = await s.get(IntakeToken, token_id, with_for_update=True)
            if row is None:
                raise DomainError("not_found", f"no token {token_id}")
            if row.revoked_at is None:
                row.revoked_at, row.revoked_by = datetime.now(UTC), actor.user
                Audit.add(s, actor, "intake.token_revoke", None,
                          {"token": row.id, "channel": row.channel})
            return as_dict(row)

    async def check(self, authorization: str | None) -> Caller:
        """The channel of a request's bearer token, or BadToken (401)."""
        token = bearer(authorization)
        if token is None or not token.startswith(f"{PREFIX}_"):
            raise BadToken()
        # The token is 256 random bits: finding its hash by index leaks nothing useful.
        async with self.sessions() as s, s.begin():
            row = (await s.execute(select(IntakeToken).where(
                IntakeToken.token_hash == token_hash(token)))).scalar_one_or_none()
            if row is None or row.revoked_at is not None:
                raise BadToken()
            now = datetime.now(UTC)
            if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
                row.last_used_at = now
            return Caller(row.id, row.channel)
