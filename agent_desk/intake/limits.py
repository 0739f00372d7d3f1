"""The intake's rate limits: fixed-window counters in Redis (shared by every web process),
several taken at once or none (a submission counts against its address and its number only
if both allow it). Keys hold hashes, never an address or a number."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import DomainError

# Take one from every counter, or none if any is at its limit: then {the longest wait in s,
# the index of that counter}; {0, 0} when taken.
_TAKE = """
local n = #KEYS
local wait, full = 0, 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    local ttl = math.max(redis.call('TTL', key), 1)
    if ttl > wait then wait, full = ttl, i end
  end
end
if wait > 0 then return {wait, full} end
for i, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[n + i], 'NX')
end
return {0, 0}
"""
# Give one back (never below zero, never a key without its expiry).
_GIVE_BACK = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Limit:
    key: str  # after the prefix: "web:a:<address hash>"
    limit: int
    window_s: int


class Quotas:
    def __init__(self, redis: Redis, prefix: str):
        self.redis = redis
        self.prefix = f"{prefix}:intake"
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)

    async def take(self, *limits: Limit) -> tuple[int, Limit | None]:
        """One from each counter: (0, None); or, nothing taken, the seconds until the
        counter that is full has room and that counter."""
        try:
            wait, full = await self._take(
                keys=[f"{self.prefix}:{lim.key}" for lim in limits],
                args=[*(lim.limit for lim in limits), *(lim.window_s for lim in limits)])
        except (RedisError, OSError):
            # Without its counters the public form would be open to anyone's flood: refuse.
            raise DomainError("unavailable", "系统繁忙，请稍后再试（the service is busy; "
                                             "try again later）") from None
        return int(wait), limits[int(full) - 1] if int(full) else None

    async def give_back(self, limit: Limit) -> None:
        try:
            await self._give_back(keys=[f"{self.prefix}:{limit.key}"])
        except (RedisError, OSError):
            pass  # the count stays one high until its window ends: harmless
