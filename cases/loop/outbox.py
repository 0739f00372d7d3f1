"""The webhooks' transactional outbox (migration 0012_webhooks): what each department's own
system is to be told, written in the same transaction as the change it tells of, so a
notification exists if and only if its change does. agent_desk/webhooks delivers the rows
(signed POSTs, retries with backoff, the dead-letter list).

One row per (department, change), its key natural: ``<case number>:v<version>:<department>``
for a change of the case loop (the case's work version after the change), so a change
notified twice is one row. ``notify`` serves other writers (the deadline sweep's 督办单): its
key is the caller's, or one made from the event and its payload.

Payloads hold no personal data: the case number, the action, states, time limits, the 事项
and the round. A department fetches what the caller said through its own API, where access
is checked and audited.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ForeignKey, Index, Integer, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from cases.loop.models import CaseWork, Department, Dispatch
from cases.loop.store import LoopChange
from common.db import Base, utcnow
from common.errors import DomainError

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
DELIVERY_STATES = (PENDING, DELIVERED, DEAD)
EVENT = re.compile(r"^[a-z][a-z0-9_]{0,23}(\.[a-z][a-z0-9_]{0,23})+$")


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The receiver's Idempotency-Key: the same for every attempt of this delivery.
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    department_id: Mapped[str] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(48))  # X-Hotline-Event: case.dispatch …
    case_number: Mapped[str | None] = mapped_column(String(32), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(12), default=PENDING)  # DELIVERY_STATES
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A worker's hold on the row while it delivers (a lease: taken back when it runs out).
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column()
    # Why the last attempt failed: an HTTP status or an exception's name (never the payload).
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def canonical(doc: Any) -> str:
    """The JSON a signature covers and a key is made from: sorted keys, no spaces, UTF-8."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


class WebhookOutbox:
    """The case loop's ``Outbox`` (called inside every change's transaction) and ``notify``
    for other writers. ``matter_name``: the 事项's full name from its code (the taxonomy)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *,
                 matter_name: Callable[[str | None], str] = lambda _code: "",
                 clock: Callable[[], datetime] = utcnow, enabled: bool = True,
                 committed: Callable[[], None] = lambda: None):
        # ``committed``: called once a transaction that wrote rows commits (the worker looks
        # at once instead of at its next round).
        self.sessions = sessions
        self.matter_name = matter_name
        self.clock = clock
        self.enabled = enabled
        self.committed = committed

    async def __call__(self, session: AsyncSession, change: LoopChange) -> None:
        """Rows for the departments the change concerns: those it names and those holding a
        dispatch of the case's current round (a review, a close, a 回访 concern the lead)."""
        if not self.enabled:
            return
        work = await session.get(CaseWork, change.case_id)
        dispatches = list((await session.execute(select(Dispatch).where(
            Dispatch.case_id == change.case_id, Dispatch.round == change.round))).scalars()
        ) if change.round else []
        wanted = set(change.departments) | {d.department_id for d in dispatches}
        hooked = await self._hooked(session, wanted)
        if not hooked:
            return
        version = work.version if work is not None else 0
        case = {
            "number": change.number, "state": change.state, "round": change.round,
            "version": version,
            "city": work.city if work else None, "district": work.district if work else None,
            "appeal_type": work.appeal_type if work else None,
            "matter": work.matter if work else None,
            "matter_name": self.matter_name(work.matter) if work and work.matter else "",
            "light": work.light if work else "none",
            "supervised": work.supervised if work else False,
            "sign_due_at": _iso(work.sign_due_at) if work else None,
            "due_at": _iso(work.due_at) if work else None,
            "closed_at": _iso(work.closed_at) if work else None,
        }
        mine = {d.department_id: d for d in dispatches}
        for dept in sorted(hooked):
            d = mine.get(dept)
            payload = {"action": change.action, "at": _iso(change.at), "case": case,
                       "dispatch": None if d is None else {
                           "round": d.round, "role": d.role, "state": d.state,
                           "sign_due_at": _iso(d.sign_due_at), "due_at": _iso(d.due_at),
                           "signed_at": _iso(d.signed_at), "replied_at": _iso(d.replied_at),
                           "extension_state": d.extension_state,
                           "extension_granted_days": d.extension_granted_days}}
            await self._insert(session, f"{change.number}:v{version}:{dept}", dept,
                               f"case.{change.action}", change.number, payload)

    async def notify(self, department_id: str, event: str, payload: dict[str, Any], *,
                     key: str | None = None, case_number: str | None = None,
                     session: AsyncSession | None = None) -> bool:
        """One notification to a department (``event`` like ``supervision.opened``), if it
        has a webhook. Inside the caller's transaction when ``session`` is given (so it is
        written with the change it tells of), else in its own. ``key``: the natural key of
        what is told (e.g. the 督办单's id and kind); without it the same event with the same
        payload is one row. True when a row was written (False: no webhook, or told before).
        The payload must hold no personal data."""
        if not EVENT.match(event):
            raise DomainError("invalid", f"event: {event!r} is not like 'supervision.opened'")
        if not self.enabled:
            return False
        if key is None:
            key = hashlib.sha256(canonical(payload).encode()).hexdigest()[:32]
        key = f"{event}:{key}"
        if session is not None:
            return await self._notify_in(session, department_id, event, payload, key,
                                         case_number)
        async with self.sessions() as own, own.begin():
            return await self._notify_in(own, department_id, event, payload, key, case_number)

    async def tell(self, department_id: str, event: str, payload: dict[str, Any], *,
                   session: AsyncSession | None = None) -> None:
        """The deadline sweep's ``Notify`` (cases/loop/sweep.py), called inside its
        transaction: keyed by the payload (the same 督办单 told twice is one row; opened
        again, a new one). Its ``case`` is the case number."""
        case = payload.get("case")
        await self.notify(department_id, event, payload, session=session,
                          case_number=case if isinstance(case, str) else None)

    async def _notify_in(self, session: AsyncSession, department_id: str, event: str,
                         payload: dict[str, Any], key: str, case_number: str | None) -> bool:
        if not await self._hooked(session, {department_id}):
            return False
        return await self._insert(session, f"{key[:120]}:{department_id}", department_id,
                                  event, case_number, payload)

    @staticmethod
    async def _hooked(session: AsyncSession, departments: Iterable[str]) -> set[str]:
        ids = list(departments)
        if not ids:
            return set()
        return set((await session.execute(select(Department.id).where(
            Department.id.in_(ids), Department.active.is_(True),
            Department.webhook_url.is_not(None), Department.webhook_url != ""))).scalars())

    async def _insert(self, session: AsyncSession, key: str, department: str, event: str,
                      case_number: str | None, payload: dict[str, Any]) -> bool:
        """One row, or none when the key is there already (ON CONFLICT DO NOTHING: the
        caller's transaction goes on either way)."""
        now = self.clock()
        values = {"idempotency_key": key, "department_id": department, "event": event,
                  "case_number": case_number, "payload": payload, "state": PENDING,
                  "attempts": 0, "next_attempt_at": now, "created_at": now, "updated_at": now}
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(WebhookDelivery).values(**values).on_conflict_do_nothing(
            index_elements=["idempotency_key"])
        result = await session.execute(stmt)
        written = bool(getattr(result, "rowcount", 0))
        if written:
            sa.event.listen(session.sync_session, "after_commit", self._after_commit,
                            once=True)
        return written

    def _after_commit(self, _session: Session) -> None:
        self.committed()
