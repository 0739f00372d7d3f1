"""The composition root: builds every room with its collaborators, then starts them in order
and stops them in reverse. Every collaborator is built here and passed in, so tests build the
same service on their own ports and databases."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_desk.callbacks import plugin as callbacks_plugin
from agent_desk.callbacks.numbers import callback_number
from agent_desk.cases.store import ConsoleStore
from agent_desk.figures.store import AgentStateLog
from agent_desk.followup import plugin as followup_plugin
from agent_desk.insight.plugin import InsightPlugin
from agent_desk.presence.plugin import PresencePlugin
from agent_desk.reports import plugin as reports_plugin
from agent_desk.webhooks.plugin import WebhooksPlugin
from asr import plugin as asr_plugin
from cases.db import make_engine, migrate, sessionmaker
from cases.loop.plugin import CaseLoopPlugin, taxonomy_of
from cases.loop.reports import LoopReports
from cases.store import CaseStore
from cases.surge_audit import SurgeAudit
from common.config import Config
from common.metrics import Metrics
from common.plugin import Plugin, Steps, start_all, stop_all
from common.privacy import PersonalData
from common.redisconn import login, redis_client
from common.retention import RetentionWorker
from hotline.nodes import NodeRuntime
from hotline.privacy import retention_job
from queueing.announce import plugin as announce_plugin
from queueing.routing.plugin import RoutingPlugin
from queueing.surge import plugin as surge_plugin
from queueing.surge.history import CallHistory
from queueing.surge.staffing import Staffing
from telephony.ami import AmiClient
from telephony.asterisk import sounds
from telephony.asterisk.instance import cel_path, recordings_spool, sounds_dir
from telephony.calls.keep_place import ROUTE as KEEP_PLACE_ROUTE
from telephony.calls.keep_place import KeepPlace
from telephony.live import plugin as live_plugin
from telephony.live.recovery import RedisGuard, RedisHealth
from telephony.monitoring import plugin as monitoring_plugin
from telephony.transfers import plugin as transfers_plugin

log = logging.getLogger(__name__)


class HotlineService:
    """The service: every collaborator is built here, at construction, and only started in
    ``start()`` (stopped in reverse order by ``stop()``)."""

    def __init__(self, cfg: Config, ami_secret: str, personal: PersonalData, *,
                 engine: AsyncEngine | None = None, redis: Redis | None = None,
                 cel_paths: dict[str, Path] | None = None, cel_interval_s: float = 30.0,
                 ami_addresses: dict[str, tuple[str, int]] | None = None,
                 ami_options: dict[str, object] | None = None, cel_from_now: bool = False,
                 redis_check_s: float = 2.0) -> None:
        # ``ami_addresses``: where to reach a node's AMI when not where the config says (tests
        # put a fault injector in between); ``ami_options``: AmiClient tuning. ``cel_from_now``:
        # a new database on an Asterisk with history reads CEL from now. ``redis_check_s``: how
        # often Redis is checked for an outage or a loss of its data.
        self.cfg = cfg
        self.ami_secret = ami_secret
        self.personal = personal
        self.started_at = 0.0
        # The service's Prometheus registry and timings (served at /metrics by the console).
        self.metrics = Metrics()
        prefix = cfg.redis.prefix
        self.engine = engine if engine is not None else make_engine(cfg.database_url)
        # AUTH and TLS as configured (common/redisconn.py); the login is checked at start.
        self.redis = redis if redis is not None else redis_client(cfg)
        sessions = sessionmaker(self.engine)
        self.store = CaseStore(sessions, personal, cfg.service.timezone, metrics=self.metrics)
        # Signed webhooks to departments' systems: the case loop writes each change's
        # notifications in the change's transaction (the outbox), a worker delivers them.
        # The 事项 taxonomy is read once, for both.
        taxonomy = taxonomy_of(cfg)
        self.webhooks = WebhooksPlugin(cfg, sessions, matter_name=taxonomy.path_names)
        # The case loop after the call (派单, time limits, 回访): its directory is seeded at start.
        self.case_loop_room = CaseLoopPlugin(cfg, sessions, personal,
                                             outbox=self.webhooks.outbox,
                                             notify=self.webhooks.outbox.tell,
                                             taxonomy=taxonomy)
        self.case_loop = self.case_loop_room.loop
        # Its figures per department, city and period; the day's and week's files written.
        self.loop_reports = LoopReports(sessions, cfg.service.timezone,
                                        {c.id: c.name for c in cfg.cities})
        self.reports = reports_plugin.build(cfg, self.loop_reports)

        # Live state (Redis); every writer reports Redis away to ``redis_health``.
        self.redis_health = RedisHealth()
        self.live = live_plugin.build_state(self.redis, prefix, self.redis_health)
        live_fact = self.redis_health.guarded("live state", self.live.on_fact)

        # Routing: live skills, caller look-ups, the FastAGI route endpoint.
        self.routing = RoutingPlugin(cfg, self.redis, sessions, personal,
                                     record=self.store.apply, case_of=self.store.cached,
                                     case_number=self.store.cached_number,
                                     submit=self.store.submit, metrics=self.metrics)
        self.skills = self.routing.skills
        self.profiles = self.routing.profiles
        self.earlier_cases = self.routing.earlier_cases
        self.lookups = self.routing.lookups
        self.router = self.routing.router
        self.fastagi = self.routing.fastagi

        # Transfers to branch centers and emergency lines (the console API drives it).
        self.callcontrol = transfers_plugin.build(
            cfg, ami_of=self._ami_of, tracker_of=lambda n: self.nodes[n].tracker,
            sinks=[self.store.apply, live_fact], cases=self.store, publish=self.live.publish)
        # 监听、耳语、强插: supervisors' phones on agents' calls (the wallboard drives it).
        self.monitoring = monitoring_plugin.build(
            cfg, ami_of=self._ami_of, tracker_of=lambda n: self.nodes[n].tracker,
            publish=self.live.publish)
        # The staffing forecast per city and half-hour (the wallboard's, the export's and the
        # surge rebalancer's: donors keep what their forecast needs).
        self.staffing = Staffing(cfg, CallHistory(sessions, ZoneInfo(cfg.service.timezone)),
                                 ZoneInfo(cfg.service.timezone))
        # Surges across cities (多援一): figures, proposals, moves between nodes.
        self.surge = surge_plugin.build(cfg, self.redis, ami_of=self._ami_of,
                                        audit=SurgeAudit(self.engine), skills_of=self.skills.of,
                                        publish=self.live.publish,
                                        forecast=self.staffing.needed_now)
        # Agents' sign-in and pause as the console sets them, and timed wrap-up; each change
        # kept as a fact for the agent figures.
        self.agent_states = AgentStateLog(sessions)
        self.presence_room = PresencePlugin(cfg, self.redis, ami_of=self._ami_of,
                                            apply_of=self._membership_of, states=self.live,
                                            log=self.agent_states)
        self.presence = self.presence_room.presence
        self.wrapup = self.presence_room.wrapup
        # Missed-call callbacks: a worker on call facts, with or without the web console.
        self.callbacks = callbacks_plugin.build(
            cfg, ConsoleStore(sessions, personal, cfg.service.timezone))
        # They and the repeat-caller index read the case: they run after it is stored.
        self.store.after_apply += [self.routing.after_store, self.callbacks.on_fact,
                                   self.wrapup.on_fact]
        # Recordings and transcripts (asr/): Asterisk records, this moves, links, transcribes.
        self.transcripts = asr_plugin.build(
            cfg, self.redis, sessions, spools={n.id: recordings_spool(cfg, n) for n in cfg.nodes},
            ami_of=self._ami_of, case_of=self.store.cached_number, metrics=self.metrics)

        # 回访 calls: the case loop's 待回访 cases called back, numbers checked with the
        # callbacks' rules; Asterisk reports over FastAGI ("followup").
        self.followups = followup_plugin.build(
            cfg, sessions, personal, self.case_loop,
            matter_name=lambda code: self.case_loop.taxonomy.path_names(code) if code else "",
            ami_of=self._ami_of,
            number_rule=lambda raw: callback_number(
                raw, cfg.callbacks.allowed_patterns,
                refused=[e.number for e in cfg.emergency_lines]),
            sounds_of=lambda node: sounds_dir(cfg, cfg.node(node)), speak=sounds.speak)
        self.fastagi.add_route(followup_plugin.ROUTE, self.followups)
        # Hot-topic alerts and suggested classification (a worker on the case records; the
        # wallboard hears of alerts on the live events channel).
        self.insight_room = InsightPlugin(cfg, sessions, personal, self.case_loop,
                                          publish=self.live.publish,
                                          notify=self.webhooks.outbox.tell)
        self.insight = self.insight_room.insight

        # Position and expected wait told to waiting callers (a call-tracker sink).
        self.announcer = announce_plugin.build(
            cfg, ami_of=self._ami_of, sounds_of=lambda node: sounds_dir(cfg, cfg.node(node)),
            speak=sounds.speak, record=self.store.submit)

        # Keep my place: Asterisk's placeholders report over FastAGI ("keep"); the agent who
        # takes one hears the case (a whisper made when the caller presses the key).
        self.keep_place = KeepPlace(record=self.store.apply,
                                    case_number=self.store.cached_number,
                                    sounds_of=lambda node: sounds_dir(cfg, cfg.node(node)),
                                    speak=sounds.speak, default_node=cfg.nodes[0].id)
        self.fastagi.add_route(KEEP_PLACE_ROUTE, self.keep_place)

        cel_paths = cel_paths or {}
        ami_addresses = ami_addresses or {}
        self.nodes: dict[str, NodeRuntime] = {}
        for node in cfg.nodes:
            self.nodes[node.id] = NodeRuntime(
                cfg, node, cel=cel_paths.get(node.id) or cel_path(cfg, node), cases=self.store,
                live=self.live, health=self.redis_health,
                # The store queues each call's facts in order and writes calls concurrently,
                # so the event stream does not wait for the database.
                sinks=[self.store.submit, live_fact, self.announcer.on_fact,
                       self.keep_place.on_fact],
                case_of=self.store.cached_number, skills_of=self.skills.of,
                signed_in=self.presence.is_signed_in,
                transfers=self.callcontrol.on_event, transcripts=self.transcripts.on_event,
                surge=self.surge.on_event, monitoring=self.monitoring.on_event,
                ami_secret=ami_secret,
                ami_address=ami_addresses.get(node.id), ami_options=ami_options,
                cel_interval_s=cel_interval_s, cel_from_now=cel_from_now, metrics=self.metrics)
            self.skills.appliers[node.id] = self.nodes[node.id].membership.apply_agent

        # Personal data past its period, on the CEL files the reconcilers read.
        self.retention = RetentionWorker(
            retention_job(cfg, sessions, self.store,
                          {n: rt.cel.path for n, rt in self.nodes.items()}),
            cfg.recording.purge_interval_s)
        # After an outage of Redis: what this service keeps is put back, every node's live
        # state resynchronised, the transcription jobs requeued.
        self.redis_guard = RedisGuard(
            self.redis, prefix, self.redis_health,
            restorers=[self.presence.restore, self.skills.restore],
            on_loss=[self.surge.restore], nodes=[rt.live for rt in self.nodes.values()],
            requeue=self.transcripts.requeue, check_s=redis_check_s)

        # Started in this order, stopped in reverse: each runs while what it uses runs. The
        # case store closes (what it holds written) after the router and the nodes that feed
        # it, before the workers it feeds.
        self.plugins: list[Plugin] = [
            Steps("database", start=lambda: migrate(self.engine, personal=personal),
                  stop=self.engine.dispose),
            # A refused login is an operator's error, said clearly.
            Steps("redis", start=lambda: login(self.redis, cfg), stop=self.redis.aclose),
            self.presence_room,
            self.callbacks,
            Steps("case store", stop=self.store.close),
            self.case_loop_room,
            self.webhooks,  # after the directory is seeded (its webhook URLs)
            self.reports,
            self.routing,
            self.keep_place,  # records what the FastAGI "keep" route hears
            self.transcripts,
            self.insight_room,
            self.retention,
            *self.nodes.values(),
            self.callcontrol,  # transfers act through the nodes' AMI clients
            self.monitoring,
            self.followups,  # calls out through the nodes, hears back over FastAGI
            self.announcer,  # whispers to waiting callers through the nodes
            self.surge,
            self.redis_guard,
        ]

    def _ami_of(self, node: str) -> AmiClient:
        return self.nodes[node].ami

    def _membership_of(self, node: str) -> Callable[[str], Awaitable[int]] | None:
        rt = self.nodes.get(node)
        return rt.membership.apply_agent if rt is not None else None

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await start_all(self.plugins)
        self.started_at = time.time()
        log.info("hotline service started", extra={
            "nodes": list(self.nodes), "fastagi_port": self.cfg.fastagi.port,
            "database": self.engine.dialect.name})

    async def wait_connected(self, timeout: float = 30.0) -> None:
        await asyncio.gather(*(rt.ami.wait_connected(timeout) for rt in self.nodes.values()))

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until all events received so far are handled (tests, orderly shutdown)."""
        await asyncio.gather(*(rt.ami.drain(timeout) for rt in self.nodes.values()))
        await self.router.drain(timeout)
        await self.store.drain(timeout)
        await self.callbacks.drain(timeout)

    async def stop(self) -> None:
        await stop_all(self.plugins)
        log.info("hotline service stopped")

    # -- Redis, as tests and the metrics see it --------------------------------------------

    async def check_redis(self) -> str:
        return await self.redis_guard.check()

    @property
    def redis_outages(self) -> int:
        return self.redis_guard.outages

    @property
    def redis_losses(self) -> int:
        return self.redis_guard.losses

    @property
    def redis_recoveries(self) -> int:
        return self.redis_guard.recoveries

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
            "redis": {"up": not self.redis_health.down, "outages": self.redis_outages,
                      "losses": self.redis_losses, "recoveries": self.redis_recoveries},
        }
