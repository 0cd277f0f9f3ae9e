"""The device authorization grant (RFC 8628) for command-line tools, as data in Redis.

authgate:device:{sha256 of device_code}  hash: client, scope, user_code, status, uid,
                                         interval, next_poll, expires
authgate:device-user-code:{user code}    → the device key (same lifetime)

A tool asks for a code pair (§3.1-3.2), shows the person the user code and where to type
it, and polls the token endpoint (§3.4). The person, signed in, enters the code on
`/_authgate/device`, sees which tool asks, and approves or denies (§3.3). Each poll is one
script on the device key alone: pending, `slow_down` (polled sooner than the interval,
which then grows by 5 s, §3.5), expired, denied, or approved — consumed at once, so a
code yields tokens once. The device code is kept only as a hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

DEVICE = "authgate:device:"
USER_CODE = "authgate:device-user-code:"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: §6.1: 8 characters of 20 consonants (no vowels: no words), shown as XXXX-XXXX; about
#: 34 bits, against which entry is rate-limited per person.
ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
LIFETIME = 600
INTERVAL = 5
#: The record outlives the code a little, so a late poll is told `expired_token`
#: rather than `invalid_grant`.
AFTERLIFE = 300
PENDING, APPROVED, DENIED = "pending", "approved", "denied"

# One poll: KEYS[1] the device key; ARGV client, now. Returns the outcome and its detail.
_POLL = """
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return {'unknown'} end
local f = {}
for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
if f.client ~= ARGV[1] then return {'unknown'} end
local now = tonumber(ARGV[2])
if now >= tonumber(f.expires) then return {'expired'} end
if f.status == 'denied' then redis.call('DEL', KEYS[1]); return {'denied'} end
if f.status == 'approved' then
  redis.call('DEL', KEYS[1])
  return {'approved', f.uid, f.scope}
end
local interval = tonumber(f.interval)
if now < tonumber(f.next_poll) then
  interval = interval + 5
  redis.call('HSET', KEYS[1], 'interval', interval, 'next_poll', now + interval)
  return {'slow_down', tostring(interval)}
end
redis.call('HSET', KEYS[1], 'next_poll', now + interval)
return {'pending'}
"""

# A person's decision: KEYS[1] the device key; ARGV status, uid, now. 1 if it was pending.
_DECIDE = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'pending' then return 0 end
if tonumber(ARGV[3]) >= tonumber(redis.call('HGET', KEYS[1], 'expires')) then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'uid', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Request:
    """A pending request as the person's page shows it."""

    key: str
    client: str
    scope: str
    user_code: str


@dataclass(frozen=True)
class Poll:
    outcome: str  # unknown | expired | denied | approved | slow_down | pending
    uid: str = ""
    scope: str = ""
    interval: int = INTERVAL


def device_key(device_code: str) -> str:
    return DEVICE + hashlib.sha256(device_code.encode()).hexdigest()


def normalize_user_code(typed: str) -> str | None:
    """What a person typed, as stored: upper case, dashes and spaces dropped (§6.1)."""
    code = "".join(c for c in typed.upper() if c not in "- ")
    if len(code) != USER_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def shown(user_code: str) -> str:
    return f"{user_code[:4]}-{user_code[4:]}"


class DeviceFlow:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._poll = redis.register_script(_POLL)
        self._decide = redis.register_script(_DECIDE)

    async def start(self, client: str, scope: str, now: float | None = None) -> tuple[str, str]:
        """A new (device_code, user_code) for `client`, pending for LIFETIME seconds."""
        now = time.time() if now is None else now
        device_code = secrets.token_urlsafe(32)
        key = device_key(device_code)
        for _ in range(5):  # a user code in use is drawn again
            user_code = "".join(secrets.choice(ALPHABET) for _ in range(USER_CODE_LENGTH))
            if await self._redis.set(USER_CODE + user_code, key, nx=True, ex=LIFETIME + AFTERLIFE):
                break
        else:
            raise RuntimeError("no free user code in five draws")
        await self._redis.hset(key, mapping={
            "client": client, "scope": scope, "user_code": user_code, "status": PENDING,
            "uid": "", "interval": INTERVAL, "next_poll": now, "expires": now + LIFETIME,
        })  # fmt: skip
        await self._redis.expire(key, LIFETIME + AFTERLIFE)
        return device_code, user_code

    async def find(self, user_code: str, now: float | None = None) -> Request | None:
        """The pending request of a (normalized) user code, if it is still pending."""
        key = await self._redis.get(USER_CODE + user_code)
        if key is None:
            return None
        fields = await self._redis.hgetall(key)
        now = time.time() if now is None else now
        if fields.get("status") != PENDING or now >= float(fields.get("expires", 0)):
            return None
        return Request(key, fields["client"], fields["scope"], user_code)

    async def decide(self, request: Request, approved: bool, uid: str) -> bool:
        """Record the person's answer; False when the request was no longer pending."""
        status = APPROVED if approved else DENIED
        done = await self._decide(keys=[request.key], args=[status, uid, time.time()])
        await self._redis.delete(USER_CODE + request.user_code)  # used: never shown again
        return bool(int(done))

    async def poll(self, device_code: str, client: str, now: float | None = None) -> Poll:
        now = time.time() if now is None else now
        result = await self._poll(keys=[device_key(device_code)], args=[client, now])
        outcome = result[0]
        if outcome == "approved":
            return Poll(outcome, uid=result[1], scope=result[2])
        if outcome == "slow_down":
            return Poll(outcome, interval=int(float(result[1])))
        return Poll(outcome)
