"""Redis outages and losses: noticed, counted, and repaired.

Calls and cases go on without Redis; what lives in it (the live state, the console's presence
and skill changes, surge moves, the transcription queue) waits for it. ``RedisHealth`` hears
of every write that did not go through; ``RedisGuard`` looks at Redis now and then, and when
it answers again (with its data, or empty after a restart without persistence or a flush)
puts back what this service holds and has every node's live state resynchronised."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.facts import CallFact, Sink
from common.replies import text_or_none
from common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Written once into each Redis dataset (``<prefix>:run``). Gone, or changed by another
# service, means Redis restarted without its data (or was flushed): the live state, the
# console's presence and skill changes and the transcription queue are rebuilt.
REDIS_RUN_KEY = "run"
REDIS_DOWN = (RedisError, OSError, TimeoutError)

# Puts back, after an outage, what this service keeps in memory (presence, skills, surge).
Restorer = Callable[[], Awaitable[object]]
# Queues again the transcription jobs Redis lost; returns their ids.
Requeue = Callable[[], Awaitable[Sequence[str]]]


class LiveResync(Protocol):
    """A node's live state, made equal to Asterisk's again (telephony/live/replay.py)."""

    async def resync(self) -> None: ...


class RedisHealth:
    """Whether Redis answers, and whether a write was lost since it last did. Every writer
    reports here; the guard reads it."""

    def __init__(self) -> None:
        self.down = False
        self.dirty = False  # a write failed: resync when Redis answers
        self._quiet: dict[str, float] = {}

    def failed(self, what: str, exc: BaseException) -> None:
        """A write to Redis failed: remember to resync, and say so at most every 10 s."""
        self.dirty = True
        now = time.monotonic()
        if now - self._quiet.get(what, -1e9) >= 10:
            self._quiet[what] = now
            log.warning("Redis unavailable: %s not updated (rebuilt when it is back)", what,
                        extra={"error": str(exc) or type(exc).__name__})

    def guarded(self, what: str, sink: Sink) -> Sink:
        """``sink`` with Redis away reported here instead of raised (the facts' other sinks,
        the case store first, must not lose a fact because Redis did)."""

        async def apply(fact: CallFact) -> None:
            try:
                await sink(fact)
            except REDIS_DOWN as exc:
                self.failed(what, exc)

        return apply


class RedisGuard:
    """Watches the run mark: counts outages, losses and recoveries; on recovery calls the
    restorers (``on_loss`` too when the data is gone), asks every node to resync its live
    state and requeues the transcription jobs."""

    def __init__(self, redis: Redis, prefix: str, health: RedisHealth, *,
                 restorers: Sequence[Restorer], on_loss: Sequence[Restorer],
                 nodes: Sequence[LiveResync], requeue: Requeue, check_s: float = 2.0):
        self.redis = redis
        self.run_key = f"{prefix}:{REDIS_RUN_KEY}"
        self.health = health
        self.restorers = restorers
        self.on_loss = on_loss
        self.nodes = nodes
        self.requeue = requeue
        self.check_s = check_s
        self.run_id: str | None = None
        self.outages = 0  # times Redis was found unreachable
        self.losses = 0  # times Redis came back without its data
        self.recoveries = 0
        self._loss_pending = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.mark()
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="redis-watch")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], what="redis-watch")
            self._task = None

    async def mark(self) -> None:
        """Our mark on this Redis dataset (the first service to see it empty writes it)."""
        await self.redis.set(self.run_key, f"{time.time():.0f}-{secrets.token_hex(6)}", nx=True)
        self.run_id = text_or_none(await self.redis.get(self.run_key))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_s)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Redis check failed")

    async def check(self) -> str:
        """One look at Redis: "ok", "down", or after an outage "recovered" (data kept) or
        "rebuilt" (Redis came back empty: restarted without persistence, or flushed)."""
        health = self.health
        try:
            run = await asyncio.wait_for(self.redis.get(self.run_key), 5)
        except REDIS_DOWN as exc:
            if not health.down:
                health.down = True
                self.outages += 1
                log.error("Redis unavailable: live state, presence and the transcription "
                          "queue wait for it; calls and cases go on",
                          extra={"error": str(exc) or type(exc).__name__})
            return "down"
        # A loss stays pending until a rebuild finishes (our mark is written early in it).
        if run != self.run_id and not self._loss_pending:
            self.losses += 1
            log.error("Redis lost its data: rebuilding the live state from Asterisk, presence "
                      "and skill changes from this service, transcription jobs from the "
                      "database (console sign-outs and login counters are lost)")
        lost = run != self.run_id or self._loss_pending
        if not (lost or health.down or health.dirty):
            return "ok"
        return await self._recover(lost)

    async def _recover(self, lost: bool) -> str:
        # Cleared first: a write lost while we rebuild marks it dirty again (one more resync).
        self.health.down = self.health.dirty = False
        self._loss_pending = lost
        try:
            done = await self._rebuild(lost)
        except BaseException:
            self.health.dirty = True  # not rebuilt: the next check tries again
            raise
        if done != "down":  # down: failed() has marked it dirty
            self._loss_pending = False
        return done

    async def _rebuild(self, lost: bool) -> str:
        try:
            await self.mark()
            for restore in self.restorers:
                await restore()
            if lost:
                for restore in self.on_loss:
                    await restore()
        except REDIS_DOWN as exc:
            self.health.failed("recovery", exc)
            return "down"
        # Facts written while Redis was away are missing even when it kept its data: the
        # live state of every node is made equal to Asterisk's again.
        for node in self.nodes:
            await node.resync()
        requeued: Sequence[str] = []
        try:
            requeued = await self.requeue()
        except Exception as exc:  # the periodic requeue tries again
            log.warning("transcription jobs not requeued yet", extra={"error": str(exc)})
        self.recoveries += 1
        log.warning("Redis state rebuilt" if lost else "Redis back: state resynchronised",
                    extra={"nodes": len(self.nodes), "jobs_requeued": len(requeued)})
        return "rebuilt" if lost else "recovered"
