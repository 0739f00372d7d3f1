"""The audit log: who viewed, exported or changed a case, in which role, from where, when.

Every case view (detail, screen pop, transcript, recording download), export, form change,
close and callback is written here; so are the retention job's purges and every reading of
the log itself. A change and its entry are written in one transaction (``add``), so neither
exists without the other; a read is answered only after its entry is stored (``record``): if
the entry cannot be written, the data is not served.

Entries hold no personal data in clear: case numbers, staff user names, client addresses and
the names of what was touched (a search by caller number records that a number was given,
not the number).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.models import AuditEntry

ACTIONS = (
    "case.view", "case.screen_pop", "case.transcript", "recording.download", "cases.search",
    "case.export", "case.form", "case.close", "callback.call", "callback.outcome",
    "audit.read", "retention.recordings", "retention.transcript", "retention.personal",
)


@dataclass(frozen=True)
class Actor:
    """Who does it: a signed-in user (from the session and the request) or the system."""

    user: str
    role: str
    address: str = ""


SYSTEM = Actor("system", "system", "")


def entry(actor: Actor, action: str, case: str | None = None,
          detail: dict[str, Any] | None = None, at: datetime | None = None) -> AuditEntry:
    assert action in ACTIONS, action
    return AuditEntry(at=at or datetime.now(UTC), username=actor.user[:64],
                      role=actor.role[:16], action=action, case_number=case,
                      address=(actor.address or "")[:64], detail=detail or {})


def _iso(v: datetime) -> str:
    return v.isoformat()


class Audit:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]):
        self.sessions = sessions
        self.written = 0

    @staticmethod
    def add(session: AsyncSession, actor: Actor, action: str, case: str | None = None,
            detail: dict[str, Any] | None = None) -> None:
        """Inside the caller's transaction: the entry commits (or not) with the change."""
        session.add(entry(actor, action, case, detail))

    async def record(self, actor: Actor, action: str, case: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        """Its own transaction (for reads); raises if it cannot be stored."""
        async with self.sessions() as s, s.begin():
            s.add(entry(actor, action, case, detail))
        self.written += 1

    async def record_many(self, actor: Actor, action: str, cases: list[str],
                          detail: dict[str, Any] | None = None) -> None:
        async with self.sessions() as s, s.begin():
            now = datetime.now(UTC)
            s.add_all([entry(actor, action, c, detail, at=now) for c in cases])
        self.written += len(cases)

    async def read(self, actor: Actor, *, case: str | None = None, user: str | None = None,
                   action: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int = 100, offset: int = 0
                   ) -> dict[str, Any]:
        """Entries, newest first; the reading itself is written first, in the same
        transaction as the read (so the answer includes it)."""
        filters = {k: v for k, v in (("case", case), ("user", user), ("action", action),
                                     ("from", since.isoformat() if since else None),
                                     ("to", until.isoformat() if until else None)) if v}
        q = select(AuditEntry)
        if case:
            q = q.where(AuditEntry.case_number == case)
        if user:
            q = q.where(AuditEntry.username == user)
        if action:
            q = q.where(AuditEntry.action == action)
        if since:
            q = q.where(AuditEntry.at >= since)
        if until:
            q = q.where(AuditEntry.at < until)
        async with self.sessions() as s, s.begin():
            s.add(entry(actor, "audit.read", case, {"filters": filters}))
            await s.flush()
            total = (await s.execute(select(func.count()).select_from(q.subquery()))
                     ).scalar_one()
            rows = (await s.execute(q.order_by(AuditEntry.id.desc()).limit(limit)
                                    .offset(offset))).scalars().all()
        self.written += 1
        return {"total": int(total), "entries": [
            {"id": r.id, "at": _iso(r.at), "user": r.username, "role": r.role,
             "action": r.action, "case": r.case_number, "address": r.address,
             "detail": r.detail or {}} for r in rows]}
