"""Sign-in attempts limited per username and per client address (Redis counters), each
attempt reserved atomically before its password is checked, so concurrent guesses cannot all
be verified (docs/security.md)."""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis

from common.errors import DomainError


class TooManyAttempts(DomainError):
    """A locked-out sign-in (429 with Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too_many_attempts",
                         f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


# Reserve one attempt on every key, or none if any is at its limit (then: the longest wait).
_RESERVE = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    wait = math.max(wait, redis.call('TTL', key), 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[#KEYS + 1], 'NX')
end
return 0
"""
# A success: the user's failures are forgiven, the address gets its attempt back (never
# below zero, never a key without its expiry).
_RELEASE = """
redis.call('DEL', KEYS[1])
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


class LoginLimiter:
    """At most ``attempts`` failed logins per username and ``address_attempts`` per client
    address in ``window_s`` (the window starts at the first attempt). Each attempt is
    reserved before its password is checked (``reserve``); a failure keeps it, a success
    gives it back (``succeeded``)."""

    def __init__(self, redis: Redis, prefix: str, attempts: int, window_s: int,
                 address_attempts: int | None = None):
        self.redis = redis
        self.prefix = f"{prefix}:web:login"
        self.attempts = attempts
        self.address_attempts = address_attempts or attempts
        self.window_s = window_s
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    def _keys(self, username: str, address: str) -> list[str]:
        user = hashlib.sha256(username.lower().encode()).hexdigest()[:24]
        return [f"{self.prefix}:u:{user}", f"{self.prefix}:a:{address}"]

    async def reserve(self, username: str, address: str) -> int:
        """Take one attempt on both counters at once: 0, or the seconds to wait (nothing
        taken)."""
        wait = await self._reserve(keys=self._keys(username, address),
                                   args=[self.attempts, self.address_attempts, self.window_s])
        return int(wait)

    async def succeeded(self, username: str, address: str) -> None:
        """The user's failures are forgiven; the address gets its attempt back."""
        await self._release(keys=self._keys(username, address))
