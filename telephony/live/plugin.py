"""The live-state room, wired. The live state itself has no life cycle (it writes when told
and flushes when the AMI clients are idle); the room's life cycle is its ``RedisGuard``
(telephony/live/recovery.py), which is the plugin: it is built last by the composition root
because it restores what other rooms keep, each passed in as a callable."""

from __future__ import annotations

from redis.asyncio import Redis

from telephony.live.recovery import RedisHealth
from telephony.live.state import LiveState


def build_state(redis: Redis, prefix: str, health: RedisHealth) -> LiveState:
    """The live state, reporting each batch Redis did not take to ``health`` (the guard then
    has every node resynchronised)."""
    return LiveState(redis, prefix, on_lost_writes=lambda exc: health.failed("live state", exc))
