"""Writing sessions to Redis as the contract defines them (the issuer's side).

`write_session` creates or replaces a session; `end_session` deletes it; both publish the
sid on the session-events channel so every verifier drops its cached copy at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from authgate.contract import (
    SESSION_EVENTS_CHANNEL,
    SESSION_FIELD_EMAIL,
    SESSION_FIELD_NAME,
    SESSION_FIELD_ROLES,
    SESSION_FIELD_SCOPE,
    SESSION_FIELD_SUB,
    session_key,
)

# KEYS[1] the session. ARGV: channel, sid, ttl ms, field, value, …
WRITE_SCRIPT = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
# KEYS[1] the session. ARGV: channel, sid.
END_SCRIPT = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
"""


async def write_session(redis: aioredis.Redis, sid: str, **record: Any) -> None:
    """Create or replace session `sid` and announce the change, in one script: it touches
    one key, so it runs on every topology, a Cluster included (a MULTI pipeline may not
    carry PUBLISH there)."""
    key, fields, ttl_ms = session_record(sid, **record)
    await redis.eval(WRITE_SCRIPT, 1, key, SESSION_EVENTS_CHANNEL, sid, ttl_ms, *flat(fields))


def session_record(
    sid: str,
    *,
    sub: str,
    ttl: float,
    roles: Iterable[str] = (),
    scope: str = "",
    email: str = "",
    name: str = "",
    extra: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str], int]:
    """The key, the fields and the lifetime (ms) of session `sid` as the contract has it.

    `extra`: fields of the issuer's own (the verifier reads only the contract's).
    """
    fields: dict[str, str] = {
        **(extra or {}),
        SESSION_FIELD_SUB: sub,
        SESSION_FIELD_ROLES: " ".join(sorted(roles)),
        SESSION_FIELD_SCOPE: scope,
        SESSION_FIELD_EMAIL: email,
        SESSION_FIELD_NAME: name,
    }
    return session_key(sid), fields, int(ttl * 1000)


async def end_session(redis: aioredis.Redis, sid: str) -> None:
    """Delete session `sid` and announce it: verifiers refuse it from then on. One script
    on one key, as `write_session`."""
    await redis.eval(END_SCRIPT, 1, session_key(sid), SESSION_EVENTS_CHANNEL, sid)


def flat(fields: Mapping[str, str]) -> list[str]:
    """`fields` as a script's arguments: field, value, field, value, …"""
    return [item for pair in fields.items() for item in pair]
