"""Sessions as the issuer owns them: one per login, indexed by user.

The record itself is the contract's (issuer.records builds it; every change is announced
on the session-events channel). The issuer adds a per-session CSRF secret and keeps the
user's session index (issuer/keyspace.py) so a role change, suspension or deletion reaches
every session of the user at once. A user's sids are drawn in the user's shard, so each
start and end is one script on one hash slot: the record, the index, its event (issuer/
outbox) and the announcement together.

The scripts close two races: a session is created only if its owner is still active when
it is written (a suspension that lands mid-login cannot miss it), and a role change
rewrites a session only if it still exists (it can never bring an ended one back).
Service accounts' sessions (issuer/clients.py) start and end through the same scripts.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from authgate.contract import (
    SESSION_EVENTS_CHANNEL,
    SESSION_FIELD_CLIENT,
    SESSION_FIELD_EMAIL,
    SESSION_FIELD_NAME,
    SESSION_FIELD_ROLES,
    SESSION_FIELD_SUB,
    session_key,
    shard_of,
)

from . import keyspace
from .outbox import LOGGED_OUT, LOGIN_SUCCEEDED, SESSION_REVOKED, Outbox, stream_of
from .records import flat, session_record
from .signing import new_session_id
from .users import ACTIVE, User

log = logging.getLogger("authgate.issuer")
FIELD_CSRF = "csrf"
FIELD_CREATED = "created"
FIELD_METHOD = "method"
FIELD_AGENT = "agent"
#: Kept from the browser's User-Agent, to tell a person's sessions apart on their page.
AGENT_MAX = 200
LOGOUT = "logout"

# Starts a session if its owner's record still holds what the caller built the session
# from (its status `active`, its roles…) and, for a service account, the credential
# ARGV[5]: KEYS session, owner's record, owner's session index, owner's outbox. ARGV:
# channel, sid, ttl ms, index ttl s (0: none), credential id or '', the event's routing key
# and JSON ('' for none), the number N of expected fields, N field/value pairs, then the
# record's fields. 1 if started, else 0.
_START = """
local n = tonumber(ARGV[8])
for i = 9, 8 + 2 * n, 2 do
  if (redis.call('HGET', KEYS[2], ARGV[i]) or '') ~= ARGV[i + 1] then return 0 end
end
if ARGV[5] ~= '' then
  local held = false
  for _, c in ipairs(cjson.decode(redis.call('HGET', KEYS[2], 'credentials') or '[]')) do
    if c.id == ARGV[5] then held = true end
  end
  if not held then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 9 + 2 * n))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
if ARGV[4] ~= '0' then redis.call('EXPIRE', KEYS[3], ARGV[4]) end
if ARGV[7] ~= '' then
  redis.call('XADD', KEYS[4], '*', 'routing_key', ARGV[6], 'event', ARGV[7])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""
# Ends a session: KEYS session, owner's session index, owner's outbox. ARGV: channel, sid,
# then (routing key, event JSON) for each event to queue.
_END = """
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[3], '*', 'routing_key', ARGV[i], 'event', ARGV[i + 1])
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
"""
# Carries a user's new roles and profile into a live session of theirs, never back into an
# ended one: KEYS session. ARGV: channel, sid, uid, field, value, … 1 if rewritten.
_REWRITE = """
if redis.call('HGET', KEYS[1], 'sub') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
"""


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
    def __init__(
        self,
        redis: aioredis.Redis,
        ttl: int,
        outbox: Outbox,
        *,
        replicas: int = 0,
        wait_ms: int = 500,
    ) -> None:
        """`replicas`: how many replicas must hold each ended or rewritten session before
        the call returns (Redis WAIT, for `wait_ms` at most; docs/scaling.md)."""
        self._redis = redis
        self._ttl = ttl
        self._outbox = outbox
        self._replicas = replicas
        self._wait_ms = wait_ms
        #: Endings and rewrites fewer than `replicas` replicas acknowledged in time.
        self.unreplicated = 0
        self._start = redis.register_script(_START)
        self._end = redis.register_script(_END)
        self._rewrite = redis.register_script(_REWRITE)

    async def create(
        self, user: User, method: str, agent: str = "", *, client: str = "", scope: str = ""
    ) -> Session | None:
        """A new session for `user`, who signed in with `method` (a provider, local, or a
        device code) from `agent` (the browser, or the tool's name), through `client` (a
        device client; none for a browser) with `scope`; None when the user is no longer
        active (suspended or deleted meanwhile)."""
        sid = draw_sid(user.id)
        csrf = secrets.token_urlsafe(32)
        now = time.time()
        extra = {FIELD_CSRF: csrf, FIELD_CREATED: str(now), FIELD_METHOD: method,
                 FIELD_AGENT: agent[:AGENT_MAX]}  # fmt: skip
        if client:
            extra[SESSION_FIELD_CLIENT] = client
        _, fields, _ = session_record(
            sid, sub=user.id, ttl=self._ttl, roles=user.roles, scope=scope,
            email=user.session_email, name=user.name, extra=extra,
        )  # fmt: skip
        event = self._outbox.event(
            LOGIN_SUCCEEDED, user.id, {"user_id": user.id, "session_id": sid, "method": method}
        )
        started = await self.start(
            sid, keyspace.user(user.id), keyspace.user_sessions(user.id), self._ttl, fields,
            owner=user.id, index_ttl=self._ttl, event=event,
        )  # fmt: skip
        if not started:
            return None
        return Session(sid=sid, sub=user.id, csrf=csrf, expires_at=now + self._ttl, scope=scope)

    async def start(
        self,
        sid: str,
        owner_key: str,
        index_key: str,
        ttl: float,
        fields: dict[str, str],
        *,
        owner: str,
        expect: dict[str, str] | None = None,
        index_ttl: int = 0,
        credential: str = "",
        event: dict[str, str] | None = None,
    ) -> bool:
        """Write session `sid` of `owner` (a user's or a client's id, whose record is at
        `owner_key`) and index it (the index expiring after `index_ttl` s, or never), if
        the owner is active and its record still has the fields of `expect` (and holds
        `credential`, when given), with `event` queued; False when not."""
        expected = {"status": ACTIVE, **(expect or {})}
        routing, body = (event["routing_key"], event["event"]) if event else ("", "")
        started = await self._start(
            keys=[session_key(sid), owner_key, index_key, stream_of(owner)],
            args=[SESSION_EVENTS_CHANNEL, sid, int(ttl * 1000), index_ttl, credential, routing,
                  body, len(expected), *flat(expected), *flat(fields)],
        )  # fmt: skip
        return bool(int(started))

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
        sids = sorted(await self._redis.smembers(keyspace.user_sessions(uid)))
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
        data = {"user_id": uid, "session_id": sid}
        events = [self._outbox.event(SESSION_REVOKED, uid, {**data, "reason": reason})]
        if reason == LOGOUT:
            events.insert(0, self._outbox.event(LOGGED_OUT, uid, data))
        await self.close(sid, keyspace.user_sessions(uid), owner=uid, events=events)

    async def close(
        self, sid: str, index_key: str, *, owner: str, events: Sequence[dict[str, str]] = ()
    ) -> None:
        """Delete session `sid` of `owner`, take it out of the index at `index_key`, queue
        `events`, and announce it: verifiers refuse it from then on."""
        queued = [item for event in events for item in (event["routing_key"], event["event"])]
        await self._replicated(
            self._end, [session_key(sid), index_key, stream_of(owner)],
            [SESSION_EVENTS_CHANNEL, sid, *queued],
        )  # fmt: skip

    async def end_all(self, uid: str, reason: str) -> int:
        """End every session of the user. Each end also leaves the index, so a session
        created after the listing stays listed for the next call."""
        sids = await self._redis.smembers(keyspace.user_sessions(uid))
        for sid in sids:
            await self.end(sid, uid, reason)
        return len(sids)

    async def update_all(self, user: User) -> None:
        """Carry a user's new roles or profile into each live session (and announce it)."""
        index = keyspace.user_sessions(user.id)
        profile = {
            SESSION_FIELD_SUB: user.id,
            SESSION_FIELD_ROLES: " ".join(sorted(user.roles)),
            SESSION_FIELD_EMAIL: user.session_email,
            SESSION_FIELD_NAME: user.name,
        }
        for sid in await self._redis.smembers(index):
            args = [SESSION_EVENTS_CHANNEL, sid, user.id, *flat(profile)]
            rewritten = await self._replicated(self._rewrite, [session_key(sid)], args)
            if not int(rewritten):  # ended meanwhile: never write it back
                await self._redis.srem(index, sid)

    async def _replicated(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run `script`; with `replicas`, then WAIT on its connection until that many
        replicas hold the change. A revocation a replica doesn't hold yet is lost if its
        master dies and that replica is promoted (docs/scaling.md); one not acknowledged
        in time is logged and counted, not undone (the master has it)."""
        if not self._replicas:
            return await script(keys=keys, args=args)
        async with self._redis.pipeline(transaction=False) as pipe:
            await script(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", self._replicas, self._wait_ms)
            result, acked = await pipe.execute()
        if int(acked) < self._replicas:
            self.unreplicated += 1
            log.warning("session %s changed: %s of %d replicas held it within %d ms",
                        args[1][:8] + "…", acked, self._replicas, self._wait_ms)  # fmt: skip
        return result


def draw_sid(owner: str) -> str:
    """A new sid in the shard of `owner` (a user's or a client's id)."""
    return keyspace.draw(shard_of(owner), new_session_id)
