"""What the router needs to know about a caller, by the keyed hash of the number (never the
number in clear): a green-channel registration (elderly, disabled) and an open case from the
last days (a repeat caller, and the agent who handled it).

The database is the truth. Each look-up keeps an in-memory mirror so the router answers without
I/O (``peek``); a change made anywhere is announced on ``<prefix>:routing`` in Redis and every
service reloads that one entry from the database; a periodic full reload repairs anything missed
(a dropped subscription, a case closed by another tool). Until the mirror is loaded, ``peek``
says ``MISS`` and the router asks the database (``lookup``) within its budget.

Memory: about 200 bytes per entry; a province with a million registered callers or open cases
holds a few hundred MB. Beyond that, ``peek`` can be made to miss and fall back to ``lookup``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cases.models import CallerProfile, Case
from common.facts import CallFact
from common.privacy import PersonalData, mask_number
from common.tasks import cancel_and_wait
from queueing.routing.model import GREEN_CHANNEL, EarlierCase
from queueing.routing.router import MISS, Miss

log = logging.getLogger(__name__)

Notify = Callable[[str, str], Awaitable[None]]


class CallerProfiles:
    """Registered green-channel callers (绿色通道)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 notify: Notify | None = None):
        self.sessions = sessions
        self.personal = personal
        self.notify = notify
        self.index: dict[str, str] = {}
        self.loaded = False

    async def load(self) -> int:
        async with self.sessions() as session:
            rows = (await session.execute(
                select(CallerProfile.caller_hash, CallerProfile.category))).all()
        self.index = {h: c for h, c in rows}
        self.loaded = True
        return len(self.index)

    def peek(self, caller_hash: str) -> str | Literal[Miss.MISS] | None:
        if not self.loaded:
            return MISS
        return self.index.get(caller_hash)

    async def lookup(self, caller_hash: str) -> str | None:
        async with self.sessions() as session:
            return (await session.execute(select(CallerProfile.category).where(
                CallerProfile.caller_hash == caller_hash))).scalar_one_or_none()

    async def refresh(self, caller_hash: str) -> None:
        category = await self.lookup(caller_hash)
        if category is None:
            self.index.pop(caller_hash, None)
        else:
            self.index[caller_hash] = category

    async def register(self, number: str, category: str, *, by: str = "") -> str:
        """Register (or re-register) a caller; returns the masked number."""
        if category not in GREEN_CHANNEL:
            raise ValueError(f"category must be one of {', '.join(GREEN_CHANNEL)}, "
                             f"not {category!r}")
        digest = self.personal.lookup_hash(number)
        if not digest:
            raise ValueError("a caller profile needs a number")
        async with self.sessions() as session, session.begin():
            row = (await session.execute(select(CallerProfile).where(
                CallerProfile.caller_hash == digest))).scalar_one_or_none()
            if row is None:
                session.add(CallerProfile(
                    caller_hash=digest, caller_enc=self.personal.encrypt(number),
                    caller_masked=mask_number(number), category=category,
                    registered_by=by or None))
            else:
                row.category = category
                row.registered_by = by or row.registered_by
        self.index[digest] = category
        if self.notify is not None:
            await self.notify("profile", digest)
        log.info("caller profile registered", extra={"caller": mask_number(number),
                                                     "category": category, "by": by})
        return mask_number(number)

    async def remove(self, number: str) -> bool:
        digest = self.personal.lookup_hash(number)
        async with self.sessions() as session, session.begin():
            row = (await session.execute(select(CallerProfile).where(
                CallerProfile.caller_hash == digest))).scalar_one_or_none()
            if row is not None:
                await session.delete(row)
        self.index.pop(digest or "", None)
        if self.notify is not None and digest:
            await self.notify("profile", digest)
        return row is not None


async def notify_services(redis: Redis, channel: str, kind: str, caller_hash: str) -> None:
    """Every running service reloads this caller's ``kind`` ("profile" or "case") entry."""
    await redis.publish(channel, json.dumps({"kind": kind, "hash": caller_hash}))


def routing_channel(prefix: str) -> str:
    return f"{prefix}:routing"


class EarlierCases:
    """Callers' open, answered cases from the last ``window_days``: the newest per caller."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
                 window_days: int, case_of: Callable[[str], Any] | None = None):
        self.sessions = sessions
        self.personal = personal
        self.window_s = window_days * 86400
        # The store's cache of recent calls' cases (CaseStore.cached).
        self.case_of = case_of
        self.index: dict[str, EarlierCase] = {}
        self._calls: dict[str, str] = {}  # call in progress -> caller hash
        self.loaded = False

    def _since(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self.window_s)

    def _query(self) -> Any:
        return (select(Case.caller_hash, Case.number, Case.id, Case.agent_id, Case.answered_at)
                .where(Case.created_at >= self._since(), Case.caller_hash.is_not(None),
                       Case.agent_id.is_not(None), Case.closed_at.is_(None))
                .order_by(Case.answered_at))

    async def load(self) -> int:
        if self.window_s <= 0:
            self.index, self.loaded = {}, True
            return 0
        async with self.sessions() as session:
            rows = (await session.execute(self._query())).all()
        index: dict[str, EarlierCase] = {}
        for h, number, case_id, agent, answered in rows:
            index[h] = EarlierCase(number, case_id, agent,
                                   answered.timestamp() if answered else time.time())
        self.index = index
        self.loaded = True
        return len(index)

    def peek(self, caller_hash: str) -> EarlierCase | Literal[Miss.MISS] | None:
        if not self.loaded:
            return MISS
        found = self.index.get(caller_hash)
        if found is not None and found.at < time.time() - self.window_s:
            self.index.pop(caller_hash, None)
            return None
        return found

    async def lookup(self, caller_hash: str) -> EarlierCase | None:
        if self.window_s <= 0:
            return None
        async with self.sessions() as session:
            row = (await session.execute(
                self._query().where(Case.caller_hash == caller_hash)
                .order_by(None).order_by(Case.answered_at.desc()).limit(1))).first()
        if row is None:
            return None
        return EarlierCase(row[1], row[2], row[3], row[4].timestamp() if row[4] else time.time())

    async def refresh(self, caller_hash: str) -> None:
        found = await self.lookup(caller_hash)
        if found is None:
            self.index.pop(caller_hash, None)
        else:
            self.index[caller_hash] = found

    async def on_fact(self, fact: CallFact) -> None:
        """A call-fact sink (after the case store): an answered call makes its caller a
        repeat caller for the window."""
        if self.window_s <= 0:
            return
        if fact.kind == "arrived":
            digest = self.personal.lookup_hash(fact.data.get("caller") or None)
            if digest:
                self._calls[fact.call_id] = digest
                if len(self._calls) > 20_000:  # calls whose end we never saw
                    for k in list(self._calls)[:10_000]:
                        del self._calls[k]
        elif fact.kind == "answered" and fact.data.get("agent"):
            digest = self._calls.get(fact.call_id)
            ref = self.case_of(fact.call_id) if self.case_of is not None else None
            if digest and ref is not None:
                self.index[digest] = EarlierCase(ref.number, ref.id, str(fact.data["agent"]),
                                                 fact.at)
        elif fact.kind in ("ended", "orphaned"):
            self._calls.pop(fact.call_id, None)

    def forget(self, caller_hash: str) -> None:
        self.index.pop(caller_hash, None)


class RoutingLookups:
    """Starts, refreshes and keeps in step the router's look-ups across services."""

    def __init__(self, redis: Redis, prefix: str, profiles: CallerProfiles,
                 earlier: EarlierCases, refresh_s: float = 300):
        self.redis = redis
        self.channel = routing_channel(prefix)
        self.profiles = profiles
        self.earlier = earlier
        self.refresh_s = refresh_s
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self.invalidations = 0

    async def start(self) -> None:
        started = time.monotonic()
        n_profiles = await self.profiles.load()
        n_cases = await self.earlier.load()
        self._tasks = [asyncio.create_task(self._listen(), name="routing-invalidations"),
                       asyncio.create_task(self._reload(), name="routing-reload")]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)
        log.info("routing look-ups loaded", extra={
            "profiles": n_profiles, "open_cases": n_cases,
            "ms": round((time.monotonic() - started) * 1000, 1)})

    async def stop(self) -> None:
        # Bounded: a Redis connection stuck mid-close must not hold up shutdown.
        await cancel_and_wait(self._tasks, what="lookups")
        self._tasks = []

    async def notify(self, kind: str, caller_hash: str) -> None:
        """Tell every service (this one included) to reload one entry."""
        await notify_services(self.redis, self.channel, kind, caller_hash)

    async def case_closed(self, caller_hash: str | None) -> None:
        if caller_hash:
            self.earlier.forget(caller_hash)
            await self.notify("case", caller_hash)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                async for msg in pubsub.listen():
                    if msg.get("type") != "message":
                        continue
                    try:
                        doc = json.loads(msg["data"])
                        kind, digest = str(doc["kind"]), str(doc["hash"])
                    except (ValueError, KeyError, TypeError):
                        log.warning("bad routing invalidation ignored")
                        continue
                    self.invalidations += 1
                    if kind == "profile":
                        await self.profiles.refresh(digest)
                    elif kind == "case":
                        await self.earlier.refresh(digest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Missed messages are repaired by the next full reload.
                log.warning("routing invalidations interrupted", extra={"error": str(exc)})
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 2)

    async def _reload(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.profiles.load()
                await self.earlier.load()
            except Exception as exc:
                log.warning("routing look-ups not reloaded", extra={"error": str(exc)})
