"""Departments' signing secrets, and the admin's side of the deliveries.

A department's secret is derived from the master secret (``[webhooks] secret_env``) and its
key generation (common/secrets.py ``webhook_secret``): the database holds only the generation,
so neither a stolen database nor a stolen backup signs anything. An admin is shown a
generation's secret once (to give to the department); after that only a rotation shows a new
one, and the old one keeps signing too for ``rotation_grace_s`` while the department
switches over.

The dead-letter list is the deliveries in state ``dead``; an admin's retry puts one back in
the queue with a fresh budget of attempts. Reveals, rotations and retries are audited (never
the secret).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.audit import Actor, Audit
from agent_desk.webhooks.models import WebhookKey
from cases.loop.models import Department
from cases.loop.outbox import DEAD, DELIVERED, PENDING, WebhookDelivery
from common.db import utcnow
from common.errors import DomainError
from common.secrets import webhook_secret


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat() if v else None


class WebhookKeys:
    """Which secrets sign a department's deliveries now. ``master`` is set at start (None:
    nothing can be signed, so nothing is sent)."""

    def __init__(self, *, grace_s: float, clock: Callable[[], datetime] = utcnow):
        self.master: str | None = None
        self.grace = timedelta(seconds=grace_s)
        self.clock = clock

    def secret(self, department: str, generation: int) -> str:
        if self.master is None:
            raise DomainError("not_available", "webhooks have no master secret: set the "
                                               "variable named by [webhooks] secret_env")
        return webhook_secret(self.master, department, generation)

    async def signing(self, session: AsyncSession, departments: Iterable[str]
                      ) -> dict[str, list[str]]:
        """The secrets each department's deliveries are signed with: its current one, and
        the previous one while a rotation's grace runs."""
        ids = sorted(set(departments))
        rows = {k.department_id: k for k in (await session.execute(select(WebhookKey).where(
            WebhookKey.department_id.in_(ids)))).scalars()}
        now = self.clock()
        out: dict[str, list[str]] = {}
        for dept in ids:
            k = rows.get(dept)
            gens = [k.generation if k else 1]
            if k is not None and k.previous_generation is not None and k.rotated_at and \
                    now - k.rotated_at < self.grace:
                gens.append(k.previous_generation)
            out[dept] = [self.secret(dept, g) for g in gens]
        return out


def delivery_view(d: WebhookDelivery, department_name: str = "") -> dict[str, Any]:
    return {
        "id": d.id, "idempotency_key": d.idempotency_key, "department": d.department_id,
        "department_name": department_name, "event": d.event, "case": d.case_number,
        "state": d.state, "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at) if d.state == PENDING else None,
        "last_status": d.last_status, "last_error": d.last_error,
        "created_at": _iso(d.created_at), "delivered_at": _iso(d.delivered_at),
    }


class WebhookAdmin:
    """What the admin's HTTP serves (agent_desk/webhooks/http.py). ``wake``: tells the
    worker a delivery is due now (after a retry)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], keys: WebhookKeys, *,
                 wake: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = utcnow):
        self.sessions = sessions
        self.keys = keys
        self.wake = wake
        self.clock = clock

    async def deliveries(self, *, state: str | None = None, department: str | None = None,
                         case: str | None = None, limit: int = 100, offset: int = 0
                         ) -> list[dict[str, Any]]:
        """Newest first; ``state="dead"``: the dead-letter list."""
        q = select(WebhookDelivery, Department.name).join(
            Department, Department.id == WebhookDelivery.department_id)
        if state:
            q = q.where(WebhookDelivery.state == state)
        if department:
            q = q.where(WebhookDelivery.department_id == department)
        if case:
            q = q.where(WebhookDelivery.case_number == case)
        q = q.order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)
        async with self.sessions() as s:
            return [delivery_view(d, name) for d, name in (await s.execute(q)).all()]

    async def retry(self, delivery_id: int, actor: Actor) -> dict[str, Any]:
        """A dead (or waiting) delivery due again now, with its attempts counted afresh."""
        now = self.clock()
        async with self.sessions() as s, s.begin():
            d = await s.get(WebhookDelivery, delivery_id, with_for_update=True)
            if d is None:
                raise DomainError("not_found", f"no delivery {delivery_id}")
            if d.state == DELIVERED:
                raise DomainError("conflict", f"delivery {delivery_id} was delivered")
            was = d.state
            d.state, d.attempts, d.next_attempt_at = PENDING, 0, now
            d.claimed_by = d.claimed_until = None
            Audit.add(s, actor, "webhook.retry", d.case_number,
                      {"delivery": d.id, "department": d.department_id, "was": was})
            name = (await s.get(Department, d.department_id))
            view = delivery_view(d, name.name if name else "")
        self.wake()
        return view

    async def departments(self) -> list[dict[str, Any]]:
        """Departments with a webhook (or a key, or deliveries): their URL, key generation,
        whether its secret was shown, and their deliveries waiting and dead."""
        async with self.sessions() as s:
            counts: dict[tuple[str, str], int] = {
                (dept, state): n for dept, state, n in (await s.execute(
                    select(WebhookDelivery.department_id, WebhookDelivery.state, func.count())
                    .where(WebhookDelivery.state.in_((PENDING, DEAD)))
                    .group_by(WebhookDelivery.department_id, WebhookDelivery.state))).all()}
            keys = {k.department_id: k for k in (await s.execute(select(WebhookKey))).scalars()}
            wanted = {d for d, _ in counts} | set(keys)
            depts = (await s.execute(select(Department).where(
                (Department.webhook_url.is_not(None) & (Department.webhook_url != ""))
                | Department.id.in_(sorted(wanted))).order_by(Department.id))).scalars().all()
        out = []
        for d in depts:
            k = keys.get(d.id)
            out.append({
                "id": d.id, "name": d.name, "webhook_url": d.webhook_url, "active": d.active,
                "generation": k.generation if k else 1,
                "revealed": bool(k and k.revealed_at), "rotated_at": _iso(k.rotated_at if k
                                                                          else None),
                "pending": counts.get((d.id, PENDING), 0), "dead": counts.get((d.id, DEAD), 0),
            })
        return out

    async def reveal(self, department: str, actor: Actor) -> dict[str, Any]:
        """The department's current secret, shown once (a second ask is refused: rotate)."""
        self.keys.secret(department, 1)  # not_available without a master secret
        now = self.clock()
        async with self.sessions() as s, s.begin():
            await self._key_row(s, department)
            shown = await s.execute(update(WebhookKey).where(
                WebhookKey.department_id == department, WebhookKey.revealed_at.is_(None))
                .values(revealed_at=now, updated_by=actor.user[:64])
                .execution_options(synchronize_session=False))
            if not getattr(shown, "rowcount", 0):
                raise DomainError("already_revealed", f"the secret of {department} was shown "
                                  "already; rotate it to get a new one")
            k = await self._key(s, department)
            Audit.add(s, actor, "webhook.secret", None,
                      {"department": department, "generation": k.generation})
        return {"department": department, "generation": k.generation,
                "secret": self.keys.secret(department, k.generation)}

    async def rotate(self, department: str, actor: Actor) -> dict[str, Any]:
        """A new secret (shown now, once); the previous one still signs during the grace."""
        self.keys.secret(department, 1)
        now = self.clock()
        async with self.sessions() as s, s.begin():
            await self._key_row(s, department)
            await s.execute(update(WebhookKey).where(WebhookKey.department_id == department)
                            .values(previous_generation=WebhookKey.generation,
                                    generation=WebhookKey.generation + 1, rotated_at=now,
                                    revealed_at=now, updated_by=actor.user[:64])
                            .execution_options(synchronize_session=False))
            k = await self._key(s, department)
            Audit.add(s, actor, "webhook.rotate", None,
                      {"department": department, "generation": k.generation})
        return {"department": department, "generation": k.generation,
                "secret": self.keys.secret(department, k.generation)}

    @staticmethod
    async def _key_row(s: AsyncSession, department: str) -> None:
        """The department's key row, made at generation 1 if it has none (concurrent makers
        do not collide: ON CONFLICT DO NOTHING)."""
        if await s.get(Department, department) is None:
            raise DomainError("not_found", f"no department {department}")
        insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else \
            sqlite.insert
        await s.execute(insert(WebhookKey).values(
            department_id=department, generation=1, updated_by="")
            .on_conflict_do_nothing(index_elements=["department_id"]))

    @staticmethod
    async def _key(s: AsyncSession, department: str) -> WebhookKey:
        return (await s.execute(select(WebhookKey).where(
            WebhookKey.department_id == department).execution_options(populate_existing=True))
        ).scalar_one()
