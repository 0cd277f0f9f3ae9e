"""Sign-in throttling: per account and per client, with delays that grow (NIST SP 800-63B
§5.2.2 rate limiting; OWASP Authentication Cheat Sheet, "Protect Against Automated
Attacks").

It replaces a lockout that anyone could turn against a user (issue 12, finding 9: five
wrong passwords locked an email for up to an hour, the right password included). Each
bucket — an account seen from clients it doesn't know, an account seen from one device
that signed in to it before (issuer/devices.py), a client address — lets FREE attempts
through, then makes each further one wait BASE seconds, doubling up to CAP. An attempt is
charged *before* the password is checked, in the same script that checks the wait, so
concurrent guesses can't slip past; the right password clears its account or device
bucket and refunds its client charge. Nothing locks: a wait always ends, and the owner's
own devices have buckets an attacker can't fill.

Keys a script touches share one Redis Cluster hash slot: `authgate:rl:{<account>}:…`,
`authgate:rl:{client:<address>}`. Accounts are keyed by an HMAC of the email, so Redis
keys don't reveal who is being guessed at.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from .errors import RateLimited

PREFIX = "authgate:rl:"
#: A bucket idle this long is forgotten, seconds.
MEMORY = 86400

# KEYS[1] the bucket; ARGV now_ms, free, base_ms, cap_ms, memory_ms. {1, 0} when the
# attempt may go ahead (and is charged), {0, wait_ms} when it must wait (not charged).
_ATTEMPT = """
local now = tonumber(ARGV[1])
local next_at = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
if now < next_at then return {0, next_at - now} end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local free = tonumber(ARGV[2])
if n >= free then
  local delay = math.min(tonumber(ARGV[3]) * 2 ^ (n - free), tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'next', math.floor(now + delay))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0}
"""

# A charge given back (the attempt succeeded): one fewer, and no wait because of it.
_REFUND = """
if redis.call('HINCRBY', KEYS[1], 'n', -1) <= 0 then return redis.call('DEL', KEYS[1]) end
return redis.call('HSET', KEYS[1], 'next', 0)
"""


@dataclass(frozen=True)
class Bucket:
    key: str
    free: int
    base: float  # seconds
    cap: float  # seconds
    what: str  # for the message


#: Unknown clients at one account; one known device at it; one client address at any.
ACCOUNT = (5, 2.0, 900.0)
DEVICE = (5, 2.0, 900.0)
CLIENT = (10, 2.0, 900.0)


class Throttle:
    def __init__(
        self, redis: aioredis.Redis, *, secret: bytes = b"", clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._secret = secret
        self._clock = clock
        self._attempt = redis.register_script(_ATTEMPT)
        self._refund = redis.register_script(_REFUND)

    def account_key(self, email: str) -> str:
        mac = hmac.new(self._secret, b"account:" + email.lower().encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def account(self, account: str) -> Bucket:
        return Bucket(f"{PREFIX}{{{account}}}:account", *ACCOUNT, "this account")

    def device(self, account: str, device: str) -> Bucket:
        return Bucket(f"{PREFIX}{{{account}}}:device:{device}", *DEVICE, "this account")

    def client(self, address: str) -> Bucket:
        return Bucket(f"{PREFIX}{{client:{address}}}", *CLIENT, "this address")

    async def check(self, bucket: Bucket) -> None:
        """Raise RateLimited while `bucket` must wait; charge nothing."""
        next_at = await self._redis.hget(bucket.key, "next")
        self._refuse_until(bucket, float(next_at or 0) - self._clock() * 1000)

    async def attempt(self, bucket: Bucket) -> None:
        """Charge one attempt to `bucket`, or raise RateLimited (charging nothing)."""
        allowed, wait_ms = await self._attempt(
            keys=[bucket.key],
            args=[math.floor(self._clock() * 1000), bucket.free, bucket.base * 1000,
                  bucket.cap * 1000, MEMORY * 1000],
        )  # fmt: skip
        if not int(allowed):
            self._refuse_until(bucket, float(wait_ms))

    async def succeeded(self, bucket: Bucket) -> None:
        """The right password: the account's or device's count starts again."""
        await self._redis.delete(bucket.key)

    async def refund(self, bucket: Bucket) -> None:
        """Give back one charge (a client's successful sign-in is no guess)."""
        await self._refund(keys=[bucket.key])

    @staticmethod
    def _refuse_until(bucket: Bucket, wait_ms: float) -> None:
        if wait_ms > 0:
            seconds = max(1, math.ceil(wait_ms / 1000))
            raise RateLimited(
                f"too many sign-in attempts for {bucket.what}: try again in {seconds} seconds",
                retry_after=seconds,
            )
