"""The composition root: wires the AMI clients, call tracking, case records, live state, the
FastAGI router and the periodic workers. Every collaborator is built here and passed in, so tests
build the same service on their own ports and databases."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_desk.presence import AgentPresence
from cases.db import make_engine, migrate, sessionmaker
from cases.store import CaseStore
from cases.surge_audit import SurgeAudit
from hotline.config import Config, NodeConfig
from hotline.privacy import PersonalData
from queueing.lookups import CallerProfiles, EarlierCases, RoutingLookups
from queueing.membership import MembershipSync
from queueing.router import RouteEndpoint
from queueing.skills import AgentSkills
from queueing.surge_manager import SurgeManager
from telephony import events as ev
from telephony.ami import AmiClient
from telephony.callcontrol import CallControl
from telephony.calls import CallFact, CallTracker
from telephony.cel import CelReconciler, last_cel_id
from telephony.fastagi import FastAgiServer
from telephony.live import LiveState

log = logging.getLogger(__name__)


def instance_dir(cfg: Config, node: NodeConfig) -> Path:
    return cfg.data_dir / "asterisk" / node.id


def cel_path(cfg: Config, node: NodeConfig) -> Path:
    return instance_dir(cfg, node) / "log" / "cel.db"


@dataclass
class NodeRuntime:
    """Everything the service keeps for one Asterisk node."""

    node: NodeConfig
    ami: AmiClient
    tracker: CallTracker
    cel: CelReconciler
    membership: MembershipSync
    events_handled: int = 0
    resyncs: int = 0


@dataclass
class HotlineService:
    cfg: Config
    ami_secret: str
    personal: PersonalData
    engine: AsyncEngine | None = None
    redis: Redis | None = None
    cel_paths: dict[str, Path] = field(default_factory=dict)
    cel_interval_s: float = 30.0
    # Where to reach each node's AMI when not where the config says (tests put a fault
    # injector in between), and AmiClient tuning (ping interval, timeouts).
    ami_addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    ami_options: dict[str, object] = field(default_factory=dict)
    # A new database on an Asterisk with history: start reading CEL from now, not from the
    # beginning (otherwise every past call would be imported as a case).
    cel_from_now: bool = False

    def __post_init__(self) -> None:
        self.nodes: dict[str, NodeRuntime] = {}
        self.fastagi: FastAgiServer | None = None
        self.started_at = 0.0

    # -- build ------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.cfg
        if self.engine is None:
            self.engine = make_engine(cfg.database_url)
        await migrate(self.engine, personal=self.personal)
        self.store = CaseStore(sessionmaker(self.engine), self.personal, cfg.service.timezone)
        if self.redis is None:
            self.redis = Redis.from_url(cfg.redis_url, decode_responses=True)
        await self.redis.ping()
        self.live = LiveState(self.redis, cfg.redis.prefix)
        # Routing: live skills, and the caller look-ups the router answers from memory.
        self.skills = AgentSkills(cfg, self.redis, cfg.redis.prefix)
        await self.skills.load()
        sessions = sessionmaker(self.engine)
        self.profiles = CallerProfiles(sessions, self.personal)
        self.earlier_cases = EarlierCases(sessions, self.personal,
                                          cfg.routing.repeat_window_days, self.store.cached)
        self.lookups = RoutingLookups(self.redis, cfg.redis.prefix, self.profiles,
                                      self.earlier_cases, cfg.routing.refresh_s)
        self.profiles.notify = self.lookups.notify
        await self.lookups.start()
        # Transfers to branch centers and emergency lines (the console API drives it).
        self.callcontrol = CallControl(
            cfg, ami_of=lambda n: self.nodes[n].ami, tracker_of=lambda n: self.nodes[n].tracker,
            sinks=[self.store.apply, self.live.on_fact], cases=self.store,
            publish=self.live.publish)

        # Surges across cities (多援一): figures, proposals, moves between nodes.
        self.surge = SurgeManager(cfg, self.redis, cfg.redis.prefix,
                                  ami_of=lambda n: self.nodes[n].ami,
                                  audit=SurgeAudit(self.engine), skills_of=self.skills.of,
                                  publish=self.live.publish)
        # Agents' sign-in and pause as the console sets them (agent_desk/presence.py).
        self.presence = AgentPresence(
            cfg, self.redis, cfg.redis.prefix, ami_of=lambda n: self.nodes[n].ami,
            apply_of=lambda n: self.nodes[n].membership.apply_agent if n in self.nodes
            else None)
        await self.presence.load()

        for node in cfg.nodes:
            self.nodes[node.id] = self._build_node(node)
        # Recordings and transcripts (asr/): Asterisk records, this moves, links, transcribes.
        from asr.service import Transcripts

        self.transcripts = Transcripts(
            cfg, self.redis, sessions,
            spools={n.id: instance_dir(cfg, n) / "spool" / "monitor" for n in cfg.nodes},
            ami_of=lambda n: self.nodes[n].ami, case_of=self.store.cached_number)

        self.router = RouteEndpoint(cfg, self.store.apply, personal=self.personal,
                                    profiles=self.profiles, earlier_cases=self.earlier_cases,
                                    case_number=self.store.cached_number)
        self.router.start()
        self.fastagi = FastAgiServer(route_timeout=cfg.fastagi.dialplan_timeout_s)
        self.fastagi.add_route("route", self.router)
        await self.fastagi.start(cfg.fastagi.bind_host, cfg.fastagi.port)

        await self.transcripts.start()
        for rt in self.nodes.values():
            if self.cel_from_now and await self.store.get_checkpoint(rt.node.id) == 0:
                await self.store.set_checkpoint(rt.node.id, max(1, await asyncio.to_thread(
                    last_cel_id, rt.cel.path)))
            # Calls that ended while we were down are in CEL: finish their cases first.
            await rt.cel.sweep()
            await rt.ami.start()
            rt.cel.start()
        self.surge.start()
        self.started_at = time.time()
        log.info("hotline service started", extra={
            "nodes": list(self.nodes), "fastagi_port": cfg.fastagi.port,
            "database": self.engine.dialect.name})

    def _build_node(self, node: NodeConfig) -> NodeRuntime:
        cfg = self.cfg
        # The earlier-cases look-up reads the store's case of the call: after the store.
        sinks = [self.store.apply, self.earlier_cases.on_fact, self.live.on_fact]
        path = self.cel_paths.get(node.id) or (node.cel_path if node.cel_path else
                                               cel_path(cfg, node))
        holder: dict[str, NodeRuntime] = {}

        async def live_ids() -> set[str] | None:
            ami = holder["rt"].ami
            if not ami.connected:
                return None
            snap = await ami.snapshot()
            return {c.channel.linkedid for c in snap.channels}

        cel = CelReconciler(node.id, path, self.store, [self.store.apply],
                            interval_s=self.cel_interval_s, live_ids=live_ids)

        async def on_resync(event: ev.Connected, gone: set[str], live: set[str]) -> None:
            await self._reconcile(holder["rt"], event, live)

        tracker = CallTracker(node.id, sinks, on_resync=on_resync)

        async def on_event(event: ev.DomainEvent) -> None:
            rt = holder["rt"]
            rt.events_handled += 1
            # Membership first: a resync must put agents back before calls are reconciled.
            await rt.membership.on_event(event)
            await tracker.handle(event)
            await self.callcontrol.on_event(event)
            await self.live.on_event(event)
            if hasattr(self, "transcripts"):
                await self.transcripts.on_event(event)
            await self.surge.on_event(event)

        host, port = self.ami_addresses.get(node.id, node.ami_endpoint())
        ami = AmiClient(node=node.id, host=host, port=port, username=node.ami_username,
                        secret=self.ami_secret, subscriber=on_event,
                        ssl=node.ami_ssl_context(cfg.base_dir),
                        server_hostname=node.ami_server_name,
                        **self.ami_options)  # type: ignore[arg-type]
        ami.flushers.append(self.live.flush)  # the live state's buffered writes, when caught up
        membership = MembershipSync(cfg, node.id, lambda: ami, skills_of=self.skills.of,
                                    signed_in=self.presence.is_signed_in)
        self.skills.appliers[node.id] = membership.apply_agent
        rt = NodeRuntime(node, ami, tracker, cel, membership)
        holder["rt"] = rt
        return rt

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

    # -- run --------------------------------------------------------------------------------

    async def wait_connected(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(rt.ami.wait_connected(timeout) for rt in self.nodes.values()))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until all events received so far are handled (tests, orderly shutdown)."""
        await asyncio.gather(*(rt.ami.drain(timeout) for rt in self.nodes.values()))
        await self.router.drain(timeout)

    async def stop(self) -> None:
        if hasattr(self, "transcripts"):
            await self.transcripts.stop()
        if hasattr(self, "surge"):
            await self.surge.stop()
        if hasattr(self, "callcontrol"):
            await self.callcontrol.stop()
        for rt in self.nodes.values():
            await rt.cel.stop()
            await rt.ami.stop()
        if self.fastagi is not None:
            await self.fastagi.stop()
        await self.router.stop()
        await self.lookups.stop()
        if self.redis is not None:
            await self.redis.aclose()
        if self.engine is not None:
            await self.engine.dispose()
        log.info("hotline service stopped")

    async def start_web(self, host: str | None = None, port: int | None = None) -> Any:
        """The agent console and wallboard (agent_desk/web.py) on [web] host:port; returns
        the aiohttp runner (``await runner.cleanup()`` stops it)."""
        from aiohttp import web

        from agent_desk.web import build_app

        app, self.console = build_app(self)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host or self.cfg.web.host,
                           self.cfg.web.port if port is None else port)
        await site.start()
        log.info("console listening", extra={"host": host or self.cfg.web.host,
                                             "port": self.cfg.web.port if port is None
                                             else port})
        return runner

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
        }
