"""The 回访 room, wired: its store over the database, the worker (itself the plugin: start,
stop) with the case loop, Asterisk's AMI per node, the callbacks' number rule and the prompt
maker as collaborators; the worker's FastAGI endpoint is registered by the caller
(``followup``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_desk.followup.store import FollowUpStore
from agent_desk.followup.worker import (
    CaseLoopActs,
    FollowUpWorker,
    NumberRule,
    Originator,
    Speak,
    Trunk,
)
from common.config import Config
from common.privacy import PersonalData

ROUTE = "followup"  # the FastAGI path the dialplan reports to


def city_trunks(cfg: Config) -> Callable[[str | None], Trunk | None]:
    """A city's carrier trunk (the first in the file), else ``[follow_up] default_trunk``."""
    by_city: dict[str, Trunk] = {}
    for t in cfg.trunks:
        if t.kind == "carrier" and t.city and t.city not in by_city:
            by_city[t.city] = Trunk(t.id, t.node)
    fallback = next((Trunk(t.id, t.node) for t in cfg.trunks
                     if t.id == cfg.follow_up.default_trunk), None)

    def trunk_of(city: str | None) -> Trunk | None:
        return by_city.get(city or "", fallback)

    return trunk_of


def build(cfg: Config, sessions: async_sessionmaker[AsyncSession], personal: PersonalData,
          loop: CaseLoopActs, *, matter_name: Callable[[str | None], str],
          ami_of: Callable[[str], Originator], number_rule: NumberRule,
          sounds_of: Callable[[str], Path | None], speak: Speak | None) -> FollowUpWorker:
    store = FollowUpStore(sessions, personal, matter_name)
    return FollowUpWorker(cfg.follow_up, store, loop, tz=ZoneInfo(cfg.service.timezone),
                          ami_of=ami_of, number_rule=number_rule, trunk_of=city_trunks(cfg),
                          sounds_of=sounds_of, speak=speak,
                          caller_id=cfg.transfers.hotline_number)
