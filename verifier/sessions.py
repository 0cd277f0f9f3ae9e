"""Session records from Redis, cached in-process while subscribed to session events.

A session is alive iff its hash, `contract.session_key(sid)`, exists (DESIGN.md). Records are cached
only while this process holds a live subscription to `authgate:session-events`: a message
drops its sid; losing the subscription drops the whole cache and stops caching until the
subscription is back. A fetch that raced with an event for its sid is used once and not
cached, so a revocation can never be overwritten by a reply read just before it.

On Sentinel and Cluster the same holds (docs/scaling.md): the channel is a classic one,
which a Cluster broadcasts to every node, and a failover — a new master, seen by asking
again every `topology_interval` — counts as a lost subscription: the cache is dropped (an
event the old master took may never have reached us) and the subscription made anew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from authgate import redis_client
from authgate.bounded import BoundedCache
from authgate.config import redact_url
from authgate.contract import (
    HEADER_KIND,
    HEADER_SESSION,
    HEADER_USER,
    IDENTITY_HEADERS,
    KIND_CLIENT,
    KIND_USER,
    SESSION_EVENTS_CHANNEL,
    SESSION_FIELD_KIND,
    SESSION_FIELD_ROLES,
    SESSION_FIELD_SCOPE,
    SESSION_FIELD_SUB,
    session_key,
)
from authgate.errors import Unavailable

from .answers import Answer

log = logging.getLogger("authgate.verifier")

#: Characters that may not appear in a header value (CTLs, RFC 9110 §5.5).
_CONTROL = dict.fromkeys([*range(0x20), 0x7F])


@dataclass(frozen=True, slots=True)
class SessionRecord:
    sub: str
    roles: frozenset[str]
    scopes: frozenset[str]
    #: Wall-clock time after which the cached copy must not be used.
    expires_at: float
    #: `user` or `client` (contract.KINDS).
    kind: str
    #: The ready-made 204 answer with the identity headers.
    answer: Answer


def build_record(sid: str, fields: dict[str, str], expires_at: float) -> SessionRecord:
    # Only `client` makes a service account; any other value (or none) is a person's.
    kind = KIND_CLIENT if fields.get(SESSION_FIELD_KIND) == KIND_CLIENT else KIND_USER
    headers = []
    for header, field in IDENTITY_HEADERS:
        if header == HEADER_USER and kind == KIND_CLIENT:
            continue  # X-Auth-User names a person; a client is named by X-Auth-Client
        value = fields.get(field, "").translate(_CONTROL).strip()
        if value:
            headers.append((header.lower().encode(), value.encode()))
    headers.append((HEADER_KIND.lower().encode(), kind.encode()))
    headers.append((HEADER_SESSION.lower().encode(), sid.encode()))
    return SessionRecord(
        sub=fields.get(SESSION_FIELD_SUB, ""),
        roles=frozenset(fields.get(SESSION_FIELD_ROLES, "").split()),
        scopes=frozenset(fields.get(SESSION_FIELD_SCOPE, "").split()),
        expires_at=expires_at,
        kind=kind,
        answer=Answer(204, headers),
    )


#: A cached session's memory beyond its variable parts (SessionRecord, its Answer with
#: the start message and header tuples, two frozensets, the sid and sub str objects, the
#: dict slot), from bench/memory.py on CPython 3.11; and per identity header.
SESSION_ENTRY_BYTES = 1100
HEADER_BYTES = 130


def weigh(sid: str, record: SessionRecord) -> int:
    """What a cached session costs in memory, near enough (bench/memory.py checks it):
    the answer's bytes count twice (its head, and the header values it was built from)."""
    answer = record.answer
    return (SESSION_ENTRY_BYTES + len(sid) + len(record.sub) + 2 * len(answer.raw)
            + HEADER_BYTES * len(answer.headers))  # fmt: skip


class FailoverSeen(RedisError):  # type: ignore[misc]
    """Redis has other masters than when the subscription began."""


class SessionStore:
    def __init__(
        self,
        redis_url: str,
        *,
        cache_size: int,
        cache_bytes: int,
        max_age: float,
        timeout: float = 2.0,
        ping_interval: float = 5.0,
        topology_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = redis_url
        self._redis = redis_client.connect(redis_url, timeout=timeout)
        # The subscription's own client, which never reconnects behind our back.
        self._events = redis_client.connect(redis_url, timeout=timeout, retries=0)
        self.cache_size = cache_size
        self._max_age = max_age
        self._ping_interval = ping_interval
        self._topology_interval = topology_interval
        self._clock = clock
        #: Live sessions by sid. Read directly on the hot path; written only here.
        self.cache: BoundedCache[str, SessionRecord] = BoundedCache(cache_size, cache_bytes, weigh)
        self._inflight: dict[str, asyncio.Future[SessionRecord | None]] = {}
        self._raced: set[str] = set()
        self._generation = 0
        self.subscribed = False
        self._subscriber: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._subscriber = asyncio.create_task(self._subscribe_forever(), name="session-events")

    async def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            await asyncio.gather(self._subscriber, return_exceptions=True)
        await self._redis.aclose()
        await self._events.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    def cached(self, sid: str, now: float) -> SessionRecord | None:
        """The cached record of a live session at `now` (the hot path), or None."""
        record = self.cache.get(sid)
        if record is not None and record.expires_at <= now:
            self.cache.drop(sid)
            return None
        return record

    async def fetch(self, sid: str) -> SessionRecord | None:
        """Read the session from Redis; None when it does not exist. Raises Unavailable."""
        pending = self._inflight.get(sid)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SessionRecord | None] = asyncio.get_running_loop().create_future()
        self._inflight[sid] = future
        generation = self._generation
        try:
            record = await self._read(sid)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no joiner
            raise
        finally:
            del self._inflight[sid]
            raced = sid in self._raced
            self._raced.discard(sid)
        future.set_result(record)
        if (
            record is not None
            and self.subscribed
            and not raced
            and generation == self._generation
            and self.cache_size
        ):
            self.cache.put(sid, record)
        return record

    async def _read(self, sid: str) -> SessionRecord | None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(session_key(sid))
                pipe.pttl(session_key(sid))
                fields, pttl = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        if not fields:
            return None
        now = self._clock()
        expires_at = now + self._max_age
        if pttl >= 0:
            expires_at = min(expires_at, now + pttl / 1000)
        return build_record(sid, fields, expires_at)

    def invalidate(self, sid: str) -> None:
        self.cache.drop(sid)
        if sid in self._inflight:
            self._raced.add(sid)

    def _set_subscribed(self, subscribed: bool) -> None:
        # Either way the cache starts empty: entries from before a gap may have missed
        # their invalidation, and a fetch that spans the change must not be cached.
        self.subscribed = subscribed
        self._generation += 1
        self.cache.reset()

    async def _subscribe_forever(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._events.pubsub()
            try:
                masters = await redis_client.masters(self._events)
                await pubsub.subscribe(SESSION_EVENTS_CHANNEL)
                await self._listen(pubsub, masters)
            except (RedisError, OSError, TimeoutError) as exc:
                if self.subscribed:
                    log.warning("session events: subscription lost, cache dropped: %s", exc)
                else:
                    log.warning(
                        "session events: cannot subscribe at %s: %s", redact_url(self._url), exc
                    )
            except Exception:  # never let the subscriber die: resubscribe instead
                log.exception("session events: unexpected error, resubscribing")
            finally:
                if self.subscribed:
                    self._set_subscribed(False)
                await pubsub.aclose()
            await asyncio.sleep(backoff)
            try:  # the old master may be gone: learn where the masters are now
                await redis_client.rediscover(self._events)
            except (RedisError, OSError) as exc:
                log.debug("session events: topology unknown yet: %s", exc)
            backoff = min(backoff * 2, 2.0)

    async def _listen(self, pubsub: aioredis.client.PubSub, masters: frozenset[str]) -> None:
        last_heard = last_checked = self._clock()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=min(1.0, self._topology_interval))
            now = self._clock()
            if masters and now - last_checked >= self._topology_interval:
                last_checked = now
                if await redis_client.masters(self._events) != masters:
                    raise FailoverSeen(f"the masters are no longer {', '.join(sorted(masters))}")
            if message is None:
                # Silence: prove the connection is alive, or give it up.
                if now - last_heard > 2 * self._ping_interval:
                    raise TimeoutError("no answer to PING on the subscription")
                if now - last_heard > self._ping_interval and not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            last_heard, pinged = now, False
            kind = message["type"]
            if kind == "message":
                self.invalidate(message["data"])
            elif kind == "subscribe" and not self.subscribed:
                self._set_subscribed(True)
                log.info("session events: subscribed to %s", SESSION_EVENTS_CHANNEL)

    def cache_len(self) -> int:
        return len(self.cache)
