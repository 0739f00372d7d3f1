"""The delivery worker: takes due rows of the outbox, POSTs each, signed, to its department's
webhook_url, and records what happened (delivered, retried later, or dead).

Several service processes may run it on one database. A worker takes a batch by a lease:
``claimed_by`` / ``claimed_until`` set in one statement (PostgreSQL: the rows are picked with
FOR UPDATE SKIP LOCKED, so workers never wait on each other; SQLite: one UPDATE ... WHERE id
IN (due rows) RETURNING, under SQLite's single writer). The POSTs are made outside any
transaction; the outcome is written only while the lease is still this worker's. A worker
that stops gives its leases back; one that is killed loses them when they run out
(``lease_s``): rows stay pending, nothing is lost. Delivery is at least once: a receiver
dedupes by the Idempotency-Key, the same for every attempt of a delivery.

Connections go only to allowed addresses: every address a host name resolves to is checked
(``GuardedResolver``), at connection time, so a name that resolves to the loopback (or is
re-pointed there later) is refused like the literal address; redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.webhooks import policy
from agent_desk.webhooks.services import WebhookKeys
from agent_desk.webhooks.signing import signature_header
from cases.loop.models import Department
from cases.loop.outbox import DELIVERED, PENDING, WebhookDelivery, canonical
from cases.loop.outbox import WebhookDelivery as Wd
from common.config import WebhooksSection
from common.db import utcnow
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)
USER_AGENT = "hotline-webhooks/1"


class AddressRefused(OSError):
    """A webhook host that resolves only to addresses the service will not connect to."""


class GuardedResolver(AbstractResolver):
    """The system's resolver, keeping only the addresses webhooks may go to."""

    def __init__(self, allowed: Sequence[policy.Network]):
        self.allowed = tuple(allowed)
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        kept = [r for r in found if policy.address_allowed(r["host"], self.allowed)]
        if not kept:
            raise AddressRefused(f"{host} resolves to no allowed address "
                                 "([webhooks] allow_networks)")
        return kept

    async def close(self) -> None:
        await self.inner.close()


def worker_name() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookWorker:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: WebhooksSection,
                 keys: WebhookKeys, *, clock: Callable[[], datetime] = utcnow,
                 rand: Callable[[], float] = random.random, name: str | None = None):
        self.sessions = sessions
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self.rand = rand
        self.name = name or worker_name()
        self.allowed = policy.networks(settings.allow_networks)
        self.delivered = self.retried = self.dead = 0
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        s = self.settings
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.allowed),
                                           limit=s.concurrency),
            timeout=aiohttp.ClientTimeout(total=s.timeout_s),
            headers={"User-Agent": USER_AGENT}, trust_env=False)
        self._task = asyncio.create_task(self._run(), name="webhooks worker")
        log.info("webhooks worker started", extra={"worker": self.name})

    async def stop(self) -> None:
        """Stop at once; deliveries in flight are given back (pending, their lease ended),
        so another worker, or this one restarted, sends them."""
        if self._http is None:
            return  # never started
        if self._task is not None:
            await cancel_and_wait([self._task], what="webhooks worker")
            self._task = None
        try:
            await self.release()
        except Exception:  # the database away: the leases run out on their own
            log.warning("webhooks: could not give back leases", exc_info=True)
        await self._http.close()
        self._http = None

    def wake(self) -> None:
        """Something is due now (an admin's retry): look without waiting for the interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away, a bug: logged, tried again next round
                log.exception("webhooks: a delivery round failed")
                n = 0
            if n >= self.settings.batch:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.interval_s):
                    await self._wake.wait()
            self._wake.clear()

    # -- one round --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Take the due deliveries (one batch), send them, record the outcomes; how many."""
        ids = await self.claim()
        if not ids:
            return 0
        async with self.sessions() as s:
            rows = (await s.execute(
                select(WebhookDelivery, Department.webhook_url, Department.active)
                .join(Department, Department.id == WebhookDelivery.department_id)
                .where(WebhookDelivery.id.in_(ids), WebhookDelivery.claimed_by == self.name)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id))).all()
            secrets = await self.keys.signing(s, {d.department_id for d, _u, _a in rows})
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(d: WebhookDelivery, url: str | None, active: bool) -> None:
            async with gate:
                attempt = await self.send(d, url, active, secrets[d.department_id])
                await self.record(d, attempt)

        await asyncio.gather(*(one(d, u, a) for d, u, a in rows))
        return len(rows)

    async def claim(self) -> list[int]:
        """Lease a batch of due deliveries to this worker; their ids."""
        now = self.clock()
        until = now + timedelta(seconds=self.settings.lease_s)
        due = select(Wd.id).where(
            Wd.state == PENDING, Wd.next_attempt_at <= now,
            or_(Wd.claimed_until.is_(None), Wd.claimed_until < now),
        ).order_by(Wd.next_attempt_at, Wd.id).limit(self.settings.batch)
        lease = {"claimed_by": self.name, "claimed_until": until}
        async with self.sessions() as s, s.begin():
            if s.get_bind().dialect.name == "postgresql":
                ids = list((await s.execute(due.with_for_update(skip_locked=True))).scalars())
                if ids:
                    await s.execute(update(Wd).where(Wd.id.in_(ids)).values(**lease)
                                    .execution_options(synchronize_session=False))
                return ids
            return list((await s.execute(
                update(Wd).where(Wd.id.in_(due.scalar_subquery())).values(**lease)
                .returning(Wd.id).execution_options(synchronize_session=False))).scalars())

    async def release(self) -> int:
        """Give back this worker's leases (at stop)."""
        async with self.sessions() as s, s.begin():
            result = await s.execute(
                update(WebhookDelivery).where(WebhookDelivery.claimed_by == self.name)
                .values(claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)

    def body(self, d: WebhookDelivery) -> bytes:
        """What is POSTed: the same bytes at every attempt (only the timestamp and the
        signature headers change)."""
        return canonical({
            "id": d.idempotency_key, "event": d.event, "department": d.department_id,
            "created_at": d.created_at.isoformat(), "data": d.payload}).encode()

    async def send(self, d: WebhookDelivery, url: str | None, active: bool,
                   secrets: list[str]) -> policy.Attempt:
        if not active:
            return policy.Attempt(error="the department is inactive", refused=True)
        if not url:
            return policy.Attempt(error="the department has no webhook_url", refused=True)
        if (problem := policy.url_problem(url, self.allowed)) is not None:
            return policy.Attempt(error=f"refused: {problem}", refused=True)
        assert self._http is not None, "start() the worker first"
        body = self.body(d)
        ts = str(int(self.clock().timestamp()))
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Hotline-Event": d.event, "Idempotency-Key": d.idempotency_key,
                   "X-Hotline-Delivery": str(d.id), "X-Hotline-Timestamp": ts,
                   "X-Hotline-Signature": signature_header(secrets, ts, body)}
        try:
            async with self._http.post(url, data=body, headers=headers,
                                       allow_redirects=False) as resp:
                return policy.Attempt(status=resp.status)
        except TimeoutError:
            return policy.Attempt(error=f"timeout after {self.settings.timeout_s:g} s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return policy.Attempt(error=f"refused: {exc.os_error}")
            return policy.Attempt(error=_words(exc))
        except (aiohttp.ClientError, OSError) as exc:
            return policy.Attempt(error=_words(exc))

    async def record(self, d: WebhookDelivery, attempt: policy.Attempt) -> bool:
        """The outcome, written while the lease is this worker's (an admin's retry or another
        worker's lease since wins: this attempt is then only one more delivery)."""
        now = self.clock()
        attempts = d.attempts + 1
        out = policy.decide(attempt, attempts=attempts, created_at=d.created_at, now=now,
                            settings=self.settings, rand=self.rand())
        values: dict[str, Any] = {
            "state": out.state, "attempts": attempts, "last_status": out.last_status,
            "last_error": out.last_error, "claimed_by": None, "claimed_until": None}
        if out.state == DELIVERED:
            values["delivered_at"] = now
        if out.next_attempt_at is not None:
            values["next_attempt_at"] = out.next_attempt_at
        async with self.sessions() as s, s.begin():
            result = await s.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == d.id,
                                              WebhookDelivery.claimed_by == self.name,
                                              WebhookDelivery.state == PENDING)
                .values(**values).execution_options(synchronize_session=False))
        if not getattr(result, "rowcount", 0):
            return False
        extra = {"delivery": d.id, "department": d.department_id, "event": d.event,
                 "case": d.case_number, "attempts": attempts, "status": attempt.status}
        if out.state == DELIVERED:
            self.delivered += 1
            log.info("webhook delivered", extra=extra)
        elif out.state == PENDING:
            self.retried += 1
            log.info("webhook failed, will retry", extra={**extra, "error": out.last_error})
        else:
            self.dead += 1
            log.warning("webhook dead", extra={**extra, "error": out.last_error})
        return True


def _words(exc: BaseException) -> str:
    """An exception as the dead-letter list shows it: its name and words (a connection's
    host and port; never the payload, which the client does not put in its errors)."""
    return f"{type(exc).__name__}: {exc}"[:256]
