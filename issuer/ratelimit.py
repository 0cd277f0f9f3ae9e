"""Rate limits in Redis: a sliding window per key (sign-in throttling: issuer/throttle.py).

Sliding window: each hit is a member of a sorted set scored by time; hits older than the
window are trimmed and the rest counted, in one script (atomic across issuer processes).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from .errors import RateLimited

PREFIX = "authgate:ratelimit:"

_HIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(window))
return {1, '0'}
"""


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._hit = redis.register_script(_HIT)

    async def hit(self, bucket: str, key: str, *, limit: int, window: float) -> None:
        """Count one hit; raise RateLimited (with Retry-After) past `limit` per `window` s."""
        now_ms = self._clock() * 1000
        allowed, wait_ms = await self._hit(
            keys=[f"{PREFIX}{bucket}:{key}"],
            args=[now_ms, window * 1000, limit, f"{now_ms}:{secrets.token_hex(4)}"],
        )
        if not int(allowed):
            retry = max(1, math.ceil(float(wait_ms) / 1000))
            raise RateLimited(
                f"too many {bucket} requests: try again in {retry} seconds", retry_after=retry
            )
