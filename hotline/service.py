"""The composition root: wires the AMI clients, call tracking, case records, live state, the
FastAGI router and the periodic workers. Every collaborator is built here and passed in, so tests
build the same service on their own ports and databases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_desk.callbacks.worker import CallbackWorker
from agent_desk.cases.store import ConsoleStore
from agent_desk.presence.services import AgentPresence
from agent_desk.presence.wrapup import WrapUpWorker
from asr.service import Transcripts
from cases.db import make_engine, migrate, sessionmaker
from cases.models import Case
from cases.store import CaseStore
from cases.surge_audit import SurgeAudit
from common import events as ev
from common.config import Config, NodeConfig
from common.facts import CallFact, SeenSince
from common.privacy import PersonalData
from common.redisconn import login, redis_client
from common.replies import text_or_none
from common.retention import RetentionWorker
from common.tasks import cancel_and_wait
from hotline.privacy import retention_job
from queueing.membership.sync import MembershipSync
from queueing.routing.lookups import CallerProfiles, EarlierCases, RoutingLookups
from queueing.routing.router import RouteEndpoint
from queueing.routing.skills import AgentSkills
from queueing.surge.manager import SurgeManager
from telephony.ami import AmiClient, AmiError
from telephony.asterisk.instance import cel_path, recordings_spool
from telephony.calls.cel import CelReconciler, last_cel_id
from telephony.calls.tracker import CallTracker
from telephony.fastagi import FastAgiServer
from telephony.live.state import LiveState
from telephony.transfers.services import CallControl

log = logging.getLogger(__name__)

# Written once into each Redis dataset (``<prefix>:run``). Gone, or changed by another
# service, means Redis restarted without its data (or was flushed): the live state, the
# console's presence and skill changes and the transcription queue are rebuilt.
REDIS_RUN_KEY = "run"
REDIS_DOWN = (RedisError, OSError, TimeoutError)


class NodeRuntime:
    """Everything the service keeps for one Asterisk node: its AMI client, call tracker, CEL
    reconciler and queue membership, wired to the service's shared parts. Its handlers are its
    own methods, so every part exists before the AMI client can call one."""

    def __init__(self, service: HotlineService, node: NodeConfig, cel: Path) -> None:
        cfg = service.cfg
        self.service = service
        self.node = node
        self.events_handled = 0
        self.resyncs = 0
        # Redis lost what it held about this node: after the next resync, put the live calls
        # back from the tracker, the cases and the snapshot.
        self.live_lost = False
        store = service.store
        self.cel = CelReconciler(node.id, cel, store, [store.apply],
                                 interval_s=service.cel_interval_s, live_ids=self._live_ids)
        # The store queues each call's facts in order and writes calls concurrently, so the
        # event stream does not wait for the database (the workers on facts run after it).
        self.tracker = CallTracker(node.id, [store.submit, service._live_fact],
                                   on_resync=self._on_resync, case_of=store.cached_number)
        host, port = service.ami_addresses.get(node.id, node.ami_endpoint())
        self.ami = AmiClient(node=node.id, host=host, port=port, username=node.ami_username,
                             secret=service.ami_secret, subscriber=self._on_event,
                             ssl=node.ami_ssl_context(cfg.base_dir),
                             server_hostname=node.ami_server_name,
                             **service.ami_options)  # type: ignore[arg-type]  # tuning kwargs
        # The live state's buffered writes go out when the client has caught up.
        self.ami.flushers.append(service.live.flush)
        self.membership = MembershipSync(cfg, node.id, lambda: self.ami,
                                         skills_of=service.skills.of,
                                         signed_in=service.presence.is_signed_in)
        service.skills.appliers[node.id] = self.membership.apply_agent
        # Membership first: a resync must put agents back before calls are reconciled. Each
        # handler on its own: Redis away must not keep the case records from their facts.
        self._handlers: tuple[tuple[str, Callable[[ev.DomainEvent], Awaitable[None]]], ...] = (
            ("membership", self.membership.on_event), ("calls", self.tracker.handle),
            ("callcontrol", service.callcontrol.on_event), ("live", self._live_event),
            ("transcripts", service.transcripts.on_event), ("surge", service.surge.on_event))

    async def _live_ids(self) -> set[str] | None:
        if not self.ami.connected:
            return None
        snap = await self.ami.snapshot()
        return {c.channel.linkedid for c in snap.channels}

    async def _on_resync(self, event: ev.Connected, gone: set[str], live: set[str]) -> None:
        await self.service._reconcile(self, event, live)

    async def _live_event(self, event: ev.DomainEvent) -> None:
        live = self.service.live
        if not (isinstance(event, ev.Connected) and event.snapshot is not None):
            await live.on_event(event)
            return
        # The tracker has handled this snapshot already (calls come before live).
        seen = self.tracker.seen_since(event.snapshot)
        await live.rebuild(self.node.id, event.snapshot, seen)
        if self.live_lost:
            await self.service._replay_live(self, event.snapshot, seen)
            self.live_lost = False

    async def _on_event(self, event: ev.DomainEvent) -> None:
        self.events_handled += 1
        for name, handler in self._handlers:
            try:
                await handler(event)
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                self.service._redis_failed(f"{name} event", exc)
            except Exception:
                log.exception("AMI event handler failed",
                              extra={"node": self.node.id, "handler": name})


class HotlineService:
    """The service: every collaborator is built here, at construction, and only started in
    ``start()`` (stopped in reverse order by ``stop()``)."""

    def __init__(self, cfg: Config, ami_secret: str, personal: PersonalData, *,
                 engine: AsyncEngine | None = None, redis: Redis | None = None,
                 cel_paths: dict[str, Path] | None = None, cel_interval_s: float = 30.0,
                 ami_addresses: dict[str, tuple[str, int]] | None = None,
                 ami_options: dict[str, object] | None = None, cel_from_now: bool = False,
                 redis_check_s: float = 2.0) -> None:
        self.cfg = cfg
        self.ami_secret = ami_secret
        self.personal = personal
        self.cel_paths = cel_paths or {}
        self.cel_interval_s = cel_interval_s
        # Where to reach each node's AMI when not where the config says (tests put a fault
        # injector in between), and AmiClient tuning (ping interval, timeouts).
        self.ami_addresses = ami_addresses or {}
        self.ami_options = ami_options or {}
        # A new database on an Asterisk with history: start reading CEL from now, not from the
        # beginning (otherwise every past call would be imported as a case).
        self.cel_from_now = cel_from_now
        # How often Redis is checked for an outage or a loss of its data.
        self.redis_check_s = redis_check_s
        self.started_at = 0.0
        self.redis_run_id: str | None = None
        self.redis_outages = 0  # times Redis was found unreachable
        self.redis_losses = 0  # times Redis came back without its data
        self.redis_recoveries = 0
        self._redis_down = False
        self._redis_dirty = False  # a live-state write failed: resync when Redis answers
        self._redis_task: asyncio.Task[None] | None = None
        self._quiet: dict[str, float] = {}
        self._loss_pending = False

        prefix = cfg.redis.prefix
        self.engine = engine if engine is not None else make_engine(cfg.database_url)
        # AUTH and TLS as configured (common/redisconn.py); the login is checked at start.
        self.redis = redis if redis is not None else redis_client(cfg)
        sessions = sessionmaker(self.engine)
        self.store = CaseStore(sessions, personal, cfg.service.timezone)
        self.live = LiveState(self.redis, prefix,
                              on_lost_writes=lambda exc: self._redis_failed("live state", exc))
        # Routing: live skills, and the caller look-ups the router answers from memory.
        self.skills = AgentSkills(cfg, self.redis, prefix)
        self.profiles = CallerProfiles(sessions, personal)
        self.earlier_cases = EarlierCases(sessions, personal, cfg.routing.repeat_window_days,
                                          self.store.cached)
        self.lookups = RoutingLookups(self.redis, prefix, self.profiles, self.earlier_cases,
                                      cfg.routing.refresh_s)
        self.profiles.notify = self.lookups.notify
        # Transfers to branch centers and emergency lines (the console API drives it).
        self.callcontrol = CallControl(
            cfg, ami_of=self._ami_of, tracker_of=lambda n: self.nodes[n].tracker,
            sinks=[self.store.apply, self._live_fact], cases=self.store,
            publish=self.live.publish)
        # Surges across cities (多援一): figures, proposals, moves between nodes.
        self.surge = SurgeManager(cfg, self.redis, prefix, ami_of=self._ami_of,
                                  audit=SurgeAudit(self.engine), skills_of=self.skills.of,
                                  publish=self.live.publish)
        # Agents' sign-in and pause as the console sets them (agent_desk/presence/services.py).
        self.presence = AgentPresence(cfg, self.redis, prefix, ami_of=self._ami_of,
                                      apply_of=self._membership_of)
        # Workers on call facts, with or without the web console: missed-call callbacks and
        # timed wrap-up. They and the repeat-caller index read the case: they run after it.
        self.callbacks = CallbackWorker(ConsoleStore(sessions, personal, cfg.service.timezone),
                                        max_attempts=cfg.web.callback_attempts)
        self.wrapup = WrapUpWorker(self.presence, self.live,
                                   seconds=cfg.web.wrapup_after_call_s)
        self.store.after_apply += [self._earlier_after_store, self.callbacks.on_fact,
                                   self.wrapup.on_fact]
        # Recordings and transcripts (asr/): Asterisk records, this moves, links, transcribes.
        self.transcripts = Transcripts(
            cfg, self.redis, sessions,
            spools={n.id: recordings_spool(cfg, n) for n in cfg.nodes},
            ami_of=self._ami_of, case_of=self.store.cached_number)
        self.nodes: dict[str, NodeRuntime] = {}
        for node in cfg.nodes:
            path = self.cel_paths.get(node.id) or cel_path(cfg, node)
            self.nodes[node.id] = NodeRuntime(self, node, path)
        # Personal data past its period, on the CEL files the reconcilers read.
        self.retention = RetentionWorker(
            retention_job(cfg, sessions, self.store,
                          {n: rt.cel.path for n, rt in self.nodes.items()}),
            cfg.recording.purge_interval_s)
        self.router = RouteEndpoint(cfg, self.store.apply, personal=personal,
                                    profiles=self.profiles, earlier_cases=self.earlier_cases,
                                    case_number=self.store.cached_number)
        self.fastagi = FastAgiServer(route_timeout=cfg.fastagi.dialplan_timeout_s)
        self.fastagi.add_route("route", self.router)

    def _ami_of(self, node: str) -> AmiClient:
        return self.nodes[node].ami

    def _membership_of(self, node: str) -> Callable[[str], Awaitable[int]] | None:
        rt = self.nodes.get(node)
        return rt.membership.apply_agent if rt is not None else None

    async def _earlier_after_store(self, fact: CallFact) -> None:
        # The repeat-caller index reads the case of the call: after it is stored.
        if fact.source in ("live", "resync"):
            await self.earlier_cases.on_fact(fact)

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        await migrate(self.engine, personal=self.personal)
        await login(self.redis, cfg)  # a refused login is an operator's error, said clearly
        await self._mark_redis()
        await self.skills.load()
        await self.lookups.start()
        await self.presence.load()
        self.callbacks.start()
        self.wrapup.start()
        self.router.start()
        await self.fastagi.start(cfg.fastagi.bind_host, cfg.fastagi.port)
        await self.transcripts.start()
        self.retention.start()
        for rt in self.nodes.values():
            if self.cel_from_now and await self.store.get_checkpoint(rt.node.id) == 0:
                await self.store.set_checkpoint(rt.node.id, max(1, await asyncio.to_thread(
                    last_cel_id, rt.cel.path)))
            # Calls that ended while we were down are in CEL: finish their cases first.
            await rt.cel.sweep()
            await rt.ami.start()
            rt.cel.start()
        self.surge.start()
        self._redis_task = asyncio.create_task(self._watch_redis(), name="redis-watch")
        self.started_at = time.time()
        log.info("hotline service started", extra={
            "nodes": list(self.nodes), "fastagi_port": cfg.fastagi.port,
            "database": self.engine.dialect.name})

    async def _reconcile(self, rt: NodeRuntime, event: ev.Connected,
                         live_calls: set[str]) -> None:
        """At a reconnect: finish from CEL the calls that ended while we were away, fill in the
        history of the calls still up, and close honestly the ones Asterisk has no record of
        ending (it was killed)."""
        rt.resyncs += 1
        snap = event.snapshot
        if snap is None:
            return
        live_linked = {c.channel.linkedid for c in snap.channels}
        await rt.cel.sweep(live=live_linked)
        await rt.cel.backfill(live_calls)
        live = {f"{rt.node.id}:{lk}" for lk in live_linked}
        stale = await self.store.stale_active(rt.node.id, live, older_than=timedelta(seconds=5))
        for call_id in stale:
            await self.store.apply(CallFact("orphaned", call_id, rt.node.id, snap.taken_at,
                                            {"reason": "not in Asterisk after reconnect"},
                                            source="resync"))
        if stale:
            log.warning("cases closed without a recorded end", extra={
                "node": rt.node.id, "cases": len(stale)})

    # -- Redis: outages and lost data ------------------------------------------------------

    @property
    def _run_key(self) -> str:
        return f"{self.cfg.redis.prefix}:{REDIS_RUN_KEY}"

    async def _mark_redis(self) -> None:
        """Our mark on this Redis dataset (the first service to see it empty writes it)."""
        await self.redis.set(self._run_key, f"{time.time():.0f}-{secrets.token_hex(6)}",
                             nx=True)
        self.redis_run_id = text_or_none(await self.redis.get(self._run_key))

    async def _live_fact(self, fact: CallFact) -> None:
        try:
            await self.live.on_fact(fact)
        except REDIS_DOWN as exc:
            self._redis_failed("live state", exc)

    def _redis_failed(self, what: str, exc: BaseException) -> None:
        """A write to Redis failed: remember to resync, and say so at most every 10 s."""
        self._redis_dirty = True
        now = time.monotonic()
        if now - self._quiet.get(what, -1e9) >= 10:
            self._quiet[what] = now
            log.warning("Redis unavailable: %s not updated (rebuilt when it is back)", what,
                        extra={"error": str(exc) or type(exc).__name__})

    async def _watch_redis(self) -> None:
        while True:
            await asyncio.sleep(self.redis_check_s)
            try:
                await self.check_redis()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Redis check failed")

    async def check_redis(self) -> str:
        """One look at Redis: "ok", "down", or after an outage "recovered" (data kept) or
        "rebuilt" (Redis came back empty: restarted without persistence, or flushed)."""
        try:
            run = await asyncio.wait_for(self.redis.get(self._run_key), 5)
        except REDIS_DOWN as exc:
            if not self._redis_down:
                self._redis_down = True
                self.redis_outages += 1
                log.error("Redis unavailable: live state, presence and the transcription "
                          "queue wait for it; calls and cases go on",
                          extra={"error": str(exc) or type(exc).__name__})
            return "down"
        # A loss stays pending until a rebuild finishes (our mark is written early in it).
        if run != self.redis_run_id and not self._loss_pending:
            self.redis_losses += 1
            log.error("Redis lost its data: rebuilding the live state from Asterisk, presence "
                      "and skill changes from this service, transcription jobs from the "
                      "database (console sign-outs and login counters are lost)")
        lost = run != self.redis_run_id or self._loss_pending
        if not (lost or self._redis_down or self._redis_dirty):
            return "ok"
        return await self._recover_redis(lost)

    async def _recover_redis(self, lost: bool) -> str:
        # Cleared first: a write lost while we rebuild marks it dirty again (one more resync).
        self._redis_down = self._redis_dirty = False
        self._loss_pending = lost
        try:
            done = await self._rebuild_redis(lost)
        except BaseException:
            self._redis_dirty = True  # not rebuilt: the next check tries again
            raise
        if done != "down":  # down: _redis_failed has marked it dirty
            self._loss_pending = False
        return done

    async def _rebuild_redis(self, lost: bool) -> str:
        try:
            await self._mark_redis()
            await self.presence.restore()
            await self.skills.restore()
            if lost:
                await self.surge.restore()
        except REDIS_DOWN as exc:
            self._redis_failed("recovery", exc)
            return "down"
        # Facts written while Redis was away are missing even when it kept its data: the
        # live state of every node is made equal to Asterisk's again.
        for rt in self.nodes.values():
            rt.live_lost = True
            try:
                await rt.ami.request_resync()
            except AmiError as exc:  # not connected: the next connection resyncs anyway
                log.warning("live state resync deferred", extra={"node": rt.node.id,
                                                                 "error": str(exc)})
        requeued: list[str] = []
        try:
            requeued = await self.transcripts.requeue()
        except Exception as exc:  # the periodic requeue tries again
            log.warning("transcription jobs not requeued yet", extra={"error": str(exc)})
        self.redis_recoveries += 1
        log.warning("Redis state rebuilt" if lost else "Redis back: state resynchronised",
                    extra={"nodes": len(self.nodes), "jobs_requeued": len(requeued)})
        return "rebuilt" if lost else "recovered"

    async def _replay_live(self, rt: NodeRuntime, snap: ev.Snapshot, seen: SeenSince) -> None:
        """After Redis lost the live state: the calls still up, as the tracker, their cases
        and Asterisk's snapshot know them (the snapshot has just rebuilt agents and queues).
        Only the live state hears these facts; the cases have them already."""
        calls = [c for c in rt.tracker.calls.values() if not c.ended]
        if not calls:
            return
        cases: dict[str, Case] = {}
        with contextlib.suppress(Exception):  # without the database: fewer details, same calls
            async with self.store.sessions() as s:
                cases = {c.call_id: c for c in (await s.execute(select(Case).where(
                    Case.call_id.in_([c.call_id for c in calls])))).scalars()
                    if c.call_id is not None}
        waiting = seen.waiting(rt.node.id, snap)
        node = rt.node.id
        for call in calls:
            case = cases.get(call.call_id)
            facts = [CallFact("arrived", call.call_id, node, call.arrived_at, {
                "caller": case.caller_masked if case else "",
                "dialed": case.dialed_number if case else "",
                "trunk": case.trunk if case else ""}, source="resync")]
            if case is not None and case.route_queue:
                facts.append(CallFact("routed", call.call_id, node, call.arrived_at, {
                    "queue": case.route_queue, "city": case.city, "priority": case.priority,
                    "case": case.number}, source="resync"))
            if call.call_id in waiting:
                queue, since = waiting[call.call_id]
                facts.append(CallFact("queued", call.call_id, node, since, {"queue": queue},
                                      source="resync"))
            if call.answered_by:
                leg = next((g for g in call.agents.values() if g.answered_at), None)
                facts.append(CallFact("answered", call.call_id, node,
                                      leg.answered_at if leg and leg.answered_at
                                      else snap.taken_at,
                                      {"agent": call.answered_by, "queue": call.queue or ""},
                                      source="resync"))
            for fact in facts:
                await self.live.on_fact(fact)
        log.info("live calls put back", extra={"node": node, "calls": len(calls)})

    # -- run --------------------------------------------------------------------------------

    async def wait_connected(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(rt.ami.wait_connected(timeout) for rt in self.nodes.values()))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until all events received so far are handled (tests, orderly shutdown)."""
        await asyncio.gather(*(rt.ami.drain(timeout) for rt in self.nodes.values()))
        await self.router.drain(timeout)
        await self.store.drain(timeout)
        await self.callbacks.drain(timeout)

    async def stop(self) -> None:
        """Stop what start() started, in reverse order. The case store is closed (what it
        still holds written) before the workers it feeds."""
        if self._redis_task is not None:
            await cancel_and_wait([self._redis_task], what="redis-watch")
            self._redis_task = None
        await self.surge.stop()
        await self.callcontrol.stop()  # transfers act through the nodes' AMI clients
        for rt in reversed(self.nodes.values()):
            await rt.cel.stop()
            await rt.ami.stop()
        await self.retention.stop()
        await self.transcripts.stop()
        await self.fastagi.stop()
        await self.router.stop()
        await self.store.close()
        await self.wrapup.stop()
        await self.callbacks.stop()
        await self.lookups.stop()
        await self.redis.aclose()
        await self.engine.dispose()
        log.info("hotline service stopped")

    def stats(self) -> dict[str, object]:
        return {
            "nodes": {n: {"connected": rt.ami.connected, "events": rt.events_handled,
                          "resyncs": rt.resyncs, "malformed": rt.ami.malformed,
                          "active_calls": rt.tracker.active,
                          "cel_completed": rt.cel.calls_completed}
                      for n, rt in self.nodes.items()},
            "facts_applied": self.store.facts_applied,
            "facts_duplicate": self.store.facts_duplicate,
            "routes": self.router.decisions, "route_fallbacks": self.router.fallbacks,
            "routes_slow": self.router.slow,
            "transfers": {"calls": len(self.callcontrol.sessions),
                          "handovers": self.callcontrol.handovers},
            "redis": {"up": not self._redis_down, "outages": self.redis_outages,
                      "losses": self.redis_losses, "recoveries": self.redis_recoveries},
        }
