"""`authgate-issuer migrate-keys`: carries data written before the shards to its new keys.

Releases before the shards (docs/scaling.md, "Migrating data written before the shards")
kept the issuer's data under keys without a hash tag, on standalone Redis or Sentinel.
Each old key is renamed to the key issuer/keyspace.py gives it (its TTL kept); a refresh
family's members are rewritten to the new names; the entries of the old outbox streams
are queued again on their shards' streams (at least once, as always: consumers dedupe by
event id). Ids, sids and tokens are unchanged. Running it twice moves nothing the second
time. With `end_sessions`, sessions and refresh tokens are ended instead of moved (each
sid announced, so verifiers drop them): for data bound for a Cluster, where a session
must lie in its owner's shard.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import redis.asyncio as aioredis

from authgate.contract import SESSION_EVENTS_CHANNEL, session_key, shard_of

from . import keyspace

OLD_OUTBOX, OLD_UNROUTABLE = "authgate:outbox", "authgate:outbox:unroutable"
OLD_FAMILY, OLD_REFRESH, OLD_SESSION = (
    "authgate:refresh-family:", "authgate:refresh:", "authgate:session:",
)  # fmt: skip
#: Old prefix → the new key of the id after it. Accounts and their indexes always move.
ACCOUNTS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("authgate:user:", keyspace.user),
    ("authgate:identity:", keyspace.identity),
    ("authgate:local:", keyspace.local),
    ("authgate:client:", keyspace.client),
)
#: What a session is made of: moved, or with `end_sessions` ended.
SESSIONS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("authgate:user-sessions:", keyspace.user_sessions),
    ("authgate:client-sessions:", keyspace.client_sessions),
    (OLD_SESSION, session_key),
    (OLD_REFRESH, keyspace.refresh),
)


async def migrate(
    redis: aioredis.Redis, *, end_sessions: bool = False, say: Callable[[str], None] = print
) -> dict[str, int]:
    """Move (or end) every old key; the number handled per old prefix."""
    done: dict[str, int] = {}
    for prefix, new_key in ACCOUNTS:
        done[prefix] = await _rename_all(redis, prefix, new_key)
        say(f"{prefix}*: {done[prefix]} moved")
    for prefix, new_key in SESSIONS:
        if end_sessions:
            done[prefix] = await _end_all(redis, prefix)
            say(f"{prefix}*: {done[prefix]} ended")
        else:
            done[prefix] = await _rename_all(redis, prefix, new_key)
            say(f"{prefix}*: {done[prefix]} moved")
    done[OLD_FAMILY] = await _families(redis, end_sessions)
    say(f"{OLD_FAMILY}*: {done[OLD_FAMILY]} {'ended' if end_sessions else 'moved'}")
    for old, stream in ((OLD_OUTBOX, keyspace.outbox), (OLD_UNROUTABLE, keyspace.unroutable)):
        done[old] = await _requeue(redis, old, stream)
        say(f"{old}: {done[old]} event(s) queued again on the shards' streams")
    return done


async def _old_keys(redis: aioredis.Redis, prefix: str) -> list[str]:
    return [key async for key in redis.scan_iter(match=prefix + "*", count=1000)]


async def _rename_all(redis: aioredis.Redis, prefix: str, new_key: Callable[[str], str]) -> int:
    moved = 0
    for key in await _old_keys(redis, prefix):
        await redis.rename(key, new_key(key[len(prefix) :]))
        moved += 1
    return moved


async def _end_all(redis: aioredis.Redis, prefix: str) -> int:
    ended = 0
    for key in await _old_keys(redis, prefix):
        await redis.delete(key)
        if prefix == OLD_SESSION:
            await redis.publish(SESSION_EVENTS_CHANNEL, key[len(prefix) :])
        ended += 1
    return ended


async def _families(redis: aioredis.Redis, end: bool) -> int:
    handled = 0
    for key in await _old_keys(redis, OLD_FAMILY):
        members = await redis.smembers(key)
        if not end:
            ttl = await redis.pttl(key)
            new = keyspace.family(key[len(OLD_FAMILY) :])
            renamed = [keyspace.refresh(m.removeprefix(OLD_REFRESH)) for m in members]
            async with redis.pipeline(transaction=True) as pipe:
                if renamed:
                    pipe.sadd(new, *renamed)
                if ttl > 0:
                    pipe.pexpire(new, ttl)
                await pipe.execute()
        await redis.delete(key)
        handled += 1
    return handled


async def _requeue(redis: aioredis.Redis, old: str, stream: Callable[[str], str]) -> int:
    if not await redis.exists(old):
        return 0
    entries = await redis.xrange(old)
    for _, fields in entries:
        subject = json.loads(fields["event"]).get("subject") or ""
        await redis.xadd(stream(shard_of(subject)), fields)
    await redis.delete(old)
    return len(entries)
