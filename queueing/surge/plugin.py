"""The surge room, wired. ``SurgeManager`` is itself the plugin (``start``: its periodic look
at the watched queues; ``stop``: ends it); its audit table, the nodes' AMI clients, agents'
live skills and the live-state publisher come in as arguments."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from cases.surge_audit import SurgeAudit
from common.config import Config
from queueing.surge.manager import SurgeManager
from telephony.ami import AmiClient


def build(cfg: Config, redis: Redis, *, ami_of: Callable[[str], AmiClient | None],
          audit: SurgeAudit, skills_of: Callable[[str], dict[str, int]],
          publish: Callable[[str, dict[str, Any]], Awaitable[None]],
          forecast: Callable[[str], Awaitable[int]] | None = None) -> SurgeManager:
    """``forecast``: a city -> the agents its staffing forecast needs now (Staffing)."""
    return SurgeManager(cfg, redis, cfg.redis.prefix, ami_of=ami_of, audit=audit,
                        skills_of=skills_of, publish=publish, forecast=forecast)
