"""The recordings and transcripts room, wired. ``Transcripts`` is itself the plugin
(``start``: the spool scan, the requeue and the transcription workers; ``stop``: ends them);
each node's recording spool, its AMI client and the case store's cache of case numbers come
in as arguments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from asr.service import Transcripts
from common.config import Config
from common.metrics import UNSERVED, Metrics


def build(cfg: Config, redis: Redis, sessions: async_sessionmaker[AsyncSession], *,
          spools: dict[str, Path], ami_of: Callable[[str], Any],
          case_of: Callable[[str], str | None], metrics: Metrics = UNSERVED) -> Transcripts:
    return Transcripts(cfg, redis, sessions, spools=spools, ami_of=ami_of, case_of=case_of,
                       metrics=metrics)
