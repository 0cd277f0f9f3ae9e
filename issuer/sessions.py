"""Sessions as the issuer owns them: one per login, indexed by user.

The record itself is the contract's (issuer.records writes it and announces every
change on the session-events channel). The issuer adds a per-session CSRF secret and
keeps `authgate:user-sessions:{uid}` so a role change, suspension or deletion reaches
every session of the user at once. Each start and end queues its event (issuer/outbox)
in the same transaction.

Two races are closed with WATCH: a session is created only if the user is still active
when it is written (a suspension that lands mid-login cannot miss it), and a role change
rewrites a session only if it still exists (it can never bring an ended one back).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from authgate.contract import SESSION_FIELD_CLIENT, session_key

from .outbox import LOGGED_OUT, LOGIN_SUCCEEDED, SESSION_REVOKED, Outbox
from .records import queue_end_session, queue_session
from .signing import new_session_id
from .users import ACTIVE, USER, User

USER_SESSIONS = "authgate:user-sessions:"
FIELD_CSRF = "csrf"
FIELD_CREATED = "created"
FIELD_METHOD = "method"
FIELD_AGENT = "agent"
#: Kept from the browser's User-Agent, to tell a person's sessions apart on their page.
AGENT_MAX = 200
LOGOUT = "logout"
#: Tries of a WATCH transaction that keeps meeting concurrent changes.
ATTEMPTS = 5


@dataclass(frozen=True)
class Session:
    sid: str
    sub: str
    csrf: str
    expires_at: float
    scope: str = ""


@dataclass(frozen=True)
class SessionInfo:
    sid: str
    created: float
    method: str
    agent: str


class Sessions:
    def __init__(self, redis: aioredis.Redis, ttl: int, outbox: Outbox) -> None:
        self._redis = redis
        self._ttl = ttl
        self._outbox = outbox

    async def create(
        self, user: User, method: str, agent: str = "", *, client: str = "", scope: str = ""
    ) -> Session | None:
        """A new session for `user`, who signed in with `method` (a provider, local, or a
        device code) from `agent` (the browser, or the tool's name), through `client` (a
        device client; none for a browser) with `scope`; None when the user is no longer
        active (suspended or deleted meanwhile)."""
        sid = new_session_id()
        csrf = secrets.token_urlsafe(32)
        for _ in range(ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(USER + user.id)
                if await pipe.hget(USER + user.id, "status") != ACTIVE:
                    return None
                now = time.time()
                pipe.multi()
                extra = {FIELD_CSRF: csrf, FIELD_CREATED: str(now), FIELD_METHOD: method,
                         FIELD_AGENT: agent[:AGENT_MAX]}  # fmt: skip
                if client:
                    extra[SESSION_FIELD_CLIENT] = client
                queue_session(
                    pipe, sid, sub=user.id, ttl=self._ttl, roles=user.roles, scope=scope,
                    email=user.session_email, name=user.name, extra=extra,
                )  # fmt: skip
                pipe.sadd(USER_SESSIONS + user.id, sid)
                pipe.expire(USER_SESSIONS + user.id, self._ttl)
                data = {"user_id": user.id, "session_id": sid, "method": method}
                self._outbox.queue(pipe, LOGIN_SUCCEEDED, user.id, data)
                try:
                    await pipe.execute()
                except WatchError:
                    continue  # the user changed meanwhile: look again
                return Session(
                    sid=sid, sub=user.id, csrf=csrf, expires_at=now + self._ttl, scope=scope
                )
        raise RuntimeError(f"user {user.id} kept changing while a session was being created")

    async def get(self, sid: str) -> Session | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(session_key(sid))
            pipe.pttl(session_key(sid))
            fields, pttl = await pipe.execute()
        if not fields or pttl <= 0:
            return None
        return Session(
            sid=sid, sub=fields.get("sub", ""), csrf=fields.get(FIELD_CSRF, ""),
            expires_at=time.time() + pttl / 1000, scope=fields.get("scope", ""),
        )  # fmt: skip

    async def listed(self, uid: str) -> list[SessionInfo]:
        """The user's live sessions, newest first, as their account page shows them."""
        sids = sorted(await self._redis.smembers(USER_SESSIONS + uid))
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(session_key(sid), "sub", FIELD_CREATED, FIELD_METHOD, FIELD_AGENT)
            rows = await pipe.execute()
        found = [
            SessionInfo(sid, float(created or 0), method or "", agent or "")
            for sid, (sub, created, method, agent) in zip(sids, rows, strict=True)
            if sub == uid
        ]
        return sorted(found, key=lambda s: s.created, reverse=True)

    async def end(self, sid: str, uid: str, reason: str) -> None:
        """End one session everywhere; `reason`: logout, revoked, refresh_token_reuse, …"""
        async with self._redis.pipeline(transaction=True) as pipe:
            self._queue_end(pipe, sid, uid, reason)
            await pipe.execute()

    async def end_all(self, uid: str, reason: str) -> int:
        """End every session of the user. Each end also leaves the index, so a session
        created after the listing stays listed for the next call."""
        sids = await self._redis.smembers(USER_SESSIONS + uid)
        for sid in sids:
            await self.end(sid, uid, reason)
        return len(sids)

    def _queue_end(self, pipe: aioredis.client.Pipeline, sid: str, uid: str, reason: str) -> None:
        queue_end_session(pipe, sid)
        pipe.srem(USER_SESSIONS + uid, sid)
        data = {"user_id": uid, "session_id": sid}
        if reason == LOGOUT:
            self._outbox.queue(pipe, LOGGED_OUT, uid, data)
        self._outbox.queue(pipe, SESSION_REVOKED, uid, {**data, "reason": reason})

    async def update_all(self, user: User) -> None:
        """Carry a user's new roles or profile into each live session (and announce it)."""
        for sid in await self._redis.smembers(USER_SESSIONS + user.id):
            await self._rewrite(sid, user)

    async def _rewrite(self, sid: str, user: User) -> None:
        key = session_key(sid)
        for _ in range(ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                fields = await pipe.hgetall(key)
                pttl = await pipe.pttl(key)
                if not fields or pttl <= 0:  # ended meanwhile: never write it back
                    await pipe.unwatch()
                    await self._redis.srem(USER_SESSIONS + user.id, sid)
                    return
                extra = {
                    k: fields[k]
                    for k in (FIELD_CSRF, FIELD_CREATED, FIELD_METHOD, FIELD_AGENT,
                              SESSION_FIELD_CLIENT)
                    if k in fields
                }  # fmt: skip
                pipe.multi()
                queue_session(
                    pipe, sid, sub=user.id, ttl=pttl / 1000, roles=user.roles,
                    scope=fields.get("scope", ""), email=user.session_email, name=user.name,
                    extra=extra,
                )  # fmt: skip
                try:
                    await pipe.execute()
                    return
                except WatchError:
                    continue  # ended or changed meanwhile: look again
