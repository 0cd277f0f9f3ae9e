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


async def write_session(redis: aioredis.Redis, sid: str, **record: Any) -> None:
    """Create or replace session `sid` and announce the change (see `queue_session`)."""
    async with redis.pipeline(transaction=True) as pipe:
        queue_session(pipe, sid, **record)
        await pipe.execute()


def queue_session(
    pipe: aioredis.client.Pipeline,
    sid: str,
    *,
    sub: str,
    ttl: float,
    roles: Iterable[str] = (),
    scope: str = "",
    email: str = "",
    name: str = "",
    extra: Mapping[str, str] | None = None,
) -> None:
    """Queue on `pipe` (a MULTI pipeline) the commands that create or replace session
    `sid`, alive for `ttl` seconds, and announce it; the caller executes, possibly with
    commands of its own in the same transaction.

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
    key = session_key(sid)
    pipe.delete(key)
    pipe.hset(key, mapping=fields)
    pipe.pexpire(key, int(ttl * 1000))
    pipe.publish(SESSION_EVENTS_CHANNEL, sid)


async def end_session(redis: aioredis.Redis, sid: str) -> None:
    """Delete session `sid` and announce it: verifiers refuse it from then on."""
    async with redis.pipeline(transaction=True) as pipe:
        queue_end_session(pipe, sid)
        await pipe.execute()


def queue_end_session(pipe: aioredis.client.Pipeline, sid: str) -> None:
    """Queue on `pipe` (a MULTI pipeline) the deletion of session `sid` and its announcement."""
    pipe.delete(session_key(sid))
    pipe.publish(SESSION_EVENTS_CHANNEL, sid)
