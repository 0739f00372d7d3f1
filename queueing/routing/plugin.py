"""The routing room, wired: agents' live skills, the caller look-ups the router answers from
memory (green channel, earlier cases) kept in step across services, the FastAGI ``route``
endpoint and its server. Started in that order (the look-ups are loaded before the first
call is routed), stopped in reverse (the router records what it still holds before the case
store closes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.config import Config
from common.facts import CallFact
from common.metrics import UNSERVED, Metrics
from common.privacy import PersonalData
from queueing.routing.lookups import CallerProfiles, EarlierCases, RoutingLookups
from queueing.routing.router import Recorder, RouteEndpoint
from queueing.routing.skills import AgentSkills
from telephony.fastagi import FastAgiServer


class RoutingPlugin:
    def __init__(self, cfg: Config, redis: Redis, sessions: async_sessionmaker[AsyncSession],
                 personal: PersonalData, *, record: Recorder, case_of: Callable[[str], Any],
                 case_number: Callable[[str], str | None], submit: Recorder | None = None,
                 metrics: Metrics = UNSERVED):
        # ``record`` puts the decision on the case; ``case_of`` and ``case_number`` are the
        # case store's cache of recent calls (CaseStore.cached, cached_number); ``submit``
        # queues a decision without waiting for its write (CaseStore.submit).
        self.cfg = cfg
        prefix = cfg.redis.prefix
        self.skills = AgentSkills(cfg, redis, prefix)
        self.profiles = CallerProfiles(sessions, personal)
        self.earlier_cases = EarlierCases(sessions, personal, cfg.routing.repeat_window_days,
                                          case_of)
        self.lookups = RoutingLookups(redis, prefix, self.profiles, self.earlier_cases,
                                      cfg.routing.refresh_s)
        self.profiles.notify = self.lookups.notify
        self.router = RouteEndpoint(cfg, record, personal=personal, profiles=self.profiles,
                                    earlier_cases=self.earlier_cases, case_number=case_number,
                                    submit=submit, metrics=metrics)
        self.fastagi = FastAgiServer(route_timeout=cfg.fastagi.dialplan_timeout_s)
        self.fastagi.add_route("route", self.router)

    async def after_store(self, fact: CallFact) -> None:
        """A case-store hook: the repeat-caller index reads the case of the call, so it hears
        the live facts once they are stored."""
        if fact.source in ("live", "resync"):
            await self.earlier_cases.on_fact(fact)

    async def start(self) -> None:
        await self.skills.load()
        await self.lookups.start()
        self.router.start()
        await self.fastagi.start(self.cfg.fastagi.bind_host, self.cfg.fastagi.port)

    async def stop(self) -> None:
        await self.fastagi.stop()
        await self.router.stop()
        await self.lookups.stop()
