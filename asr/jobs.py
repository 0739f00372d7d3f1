"""The transcription job queue in Redis: survives a restart of the service.

    <prefix>:asr:pending   list of case numbers (RPOP takes the oldest)
    <prefix>:asr:running   sorted set: case -> lease deadline (epoch s), renewed while working
    <prefix>:asr:attempts  hash: case -> attempts so far

A worker that dies keeps its lease until it runs out; ``reclaim`` (at start and every few
seconds) puts such jobs back at the head of the queue. A case is never pending twice.

Redis is not the job's only record: the case's transcript row (pending/running) is, and the
service puts back what Redis lost (``Transcripts.requeue``: a Redis restarted without its
data, or a service killed between storing a recording and queueing its job).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

_ENQUEUE = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[1])
return 1
"""
_CLAIM = """
local c = redis.call('RPOP', KEYS[1])
if c then
  redis.call('ZADD', KEYS[2], ARGV[1], c)
  redis.call('HINCRBY', KEYS[3], c, 1)
end
return c
"""
_RECLAIM = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, c in ipairs(gone) do
  redis.call('ZREM', KEYS[2], c)
  if not redis.call('LPOS', KEYS[1], c) then redis.call('RPUSH', KEYS[1], c) end
end
return gone
"""


class JobQueue:
    def __init__(self, redis: Redis, prefix: str, lease_s: float = 30.0):
        self.redis = redis
        self.lease_s = lease_s
        self.pending = f"{prefix}:asr:pending"
        self.running = f"{prefix}:asr:running"
        self.attempts_key = f"{prefix}:asr:attempts"
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._reclaim = redis.register_script(_RECLAIM)

    async def enqueue(self, case: str, *, reset: bool = False) -> bool:
        if reset:
            await self.redis.hdel(self.attempts_key, case)
        return bool(await self._enqueue(keys=[self.pending, self.running], args=[case]))

    async def claim(self) -> tuple[str, int] | None:
        """The oldest pending job, now leased to the caller, and its attempt number."""
        case = await self._claim(keys=[self.pending, self.running, self.attempts_key],
                                 args=[time.time() + self.lease_s])
        if case is None:
            return None
        attempts = int(await self.redis.hget(self.attempts_key, case) or 1)
        return case, attempts

    async def renew(self, cases: list[str]) -> None:
        if cases:
            deadline = time.time() + self.lease_s
            await self.redis.zadd(self.running, dict.fromkeys(cases, deadline), xx=True)

    async def finish(self, case: str) -> None:
        async with self.redis.pipeline(transaction=True) as p:
            p.zrem(self.running, case)
            p.hdel(self.attempts_key, case)
            await p.execute()

    async def retry(self, case: str, *, count: bool = True) -> None:
        """Back to the queue; ``count=False`` when the job could not even start (the database
        was away), so the attempt is not held against it."""
        async with self.redis.pipeline(transaction=True) as p:
            p.zrem(self.running, case)
            p.lpush(self.pending, case)
            if not count:
                p.hincrby(self.attempts_key, case, -1)
            await p.execute()

    async def reclaim(self, now: float | None = None) -> list[str]:
        """Jobs whose worker stopped renewing its lease go back to the head of the queue."""
        return list(await self._reclaim(keys=[self.pending, self.running],
                                        args=[now if now is not None else time.time()]))

    async def counts(self) -> dict[str, int]:
        return {"pending": int(await self.redis.llen(self.pending)),
                "running": int(await self.redis.zcard(self.running))}

    async def is_queued(self, case: str) -> bool:
        return (await self.redis.zscore(self.running, case) is not None
                or await self.redis.lpos(self.pending, case) is not None)
