"""Users in Redis, keyed by (provider, subject) — never by email.

The keys (issuer/keyspace.py): the user's hash (email, name, roles, status, created,
identities[, password]) in the shard of its id; an index from each identity (and from a
local account's email) to the id, in the shard of the identity; and the listing by
creation time.

A new user is drawn in the shard of the identity or email it signs up with, so the index,
the user and its user.created event are written by one script: two concurrent first logins
of one person make one user. What spans two shards is written in two steps, ordered so
that a failure between them can only leave an index pointing at a user that doesn't list
it (linking: the index is claimed first, and given back if the user is gone) or at no user
(deleting: the user goes first, its indexes after). Such an index is recognised and
dropped when it is next used, and the identity signs up anew. The listing is written after
the user; a failure between them leaves a user out of the listing, found by id.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from authgate.contract import shard_of

from . import keyspace
from .errors import Conflict
from .outbox import PLATFORM_CONNECTED, USER_CREATED, USER_DELETED, USER_UPDATED, Outbox, stream_of
from .providers import Identity
from .records import flat

ACTIVE, SUSPENDED = "active", "suspended"
#: Tries of a sign-up that keeps meeting an index left by a deleted user.
ATTEMPTS = 3

# The user an index (identity or local email) points at, or a new one created with the
# index and its event: KEYS index, the new user's hash (drawn in the index's shard), the
# shard's outbox. ARGV: the new id, routing key, event, then the new user's fields.
# Returns {uid, 1 if created}.
_FIND_OR_CREATE = """
local uid = redis.call('GET', KEYS[1])
if uid then return {uid, 0} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('XADD', KEYS[3], '*', 'routing_key', ARGV[2], 'event', ARGV[3])
return {ARGV[1], 1}
"""
# What a provider now says of an existing user (email, name: '' keeps the stored one):
# KEYS the user's hash. Returns the hash, empty when there is no such user.
_PROFILE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'email', ARGV[1], 'email_verified', '1') end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[2]) end
return redis.call('HGETALL', KEYS[1])
"""
# Adds an identity to an existing user, with its event: KEYS the user's hash, its outbox.
# ARGV: "provider:subject", routing key, event. 0 when there is no such user.
_ATTACH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ids = redis.call('HGET', KEYS[1], 'identities') or ''
redis.call('HSET', KEYS[1], 'identities', ids .. ' ' .. ARGV[1])
redis.call('XADD', KEYS[2], '*', 'routing_key', ARGV[2], 'event', ARGV[3])
return 1
"""
# Drops an index if it still points at ARGV[1]: KEYS the index.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    roles: frozenset[str]
    status: str
    created: float
    identities: tuple[str, ...]
    email_verified: bool = False

    @property
    def session_email(self) -> str:
        """The email upstreams may see (X-Auth-Email): only a verified one."""
        return self.email if self.email_verified else ""

    def public(self) -> dict[str, object]:
        return {
            "id": self.id, "email": self.email, "name": self.name, "roles": sorted(self.roles),
            "status": self.status, "created": self.created, "identities": list(self.identities),
        }  # fmt: skip


def _user(uid: str, fields: dict[str, str]) -> User:
    return User(
        id=uid,
        email=fields.get("email", ""),
        name=fields.get("name", ""),
        roles=frozenset(fields.get("roles", "").split()),
        status=fields.get("status", ACTIVE),
        created=float(fields.get("created", 0)),
        identities=tuple(fields.get("identities", "").split()),
        email_verified=fields.get("email_verified") == "1",
    )


class Users:
    def __init__(self, redis: aioredis.Redis, outbox: Outbox) -> None:
        self._redis = redis
        self._outbox = outbox
        self._find_or_create = redis.register_script(_FIND_OR_CREATE)
        self._profile = redis.register_script(_PROFILE)
        self._attach = redis.register_script(_ATTACH)
        self._release = redis.register_script(_RELEASE)

    async def upsert(self, identity: Identity) -> tuple[User, bool]:
        """The user behind `identity`, created on first login; (user, created)."""
        email = identity.email if identity.email_verified and identity.email else ""
        ref = f"{identity.provider}:{identity.subject}"
        name = identity.name or ""
        fields = {"email": email, "name": name, "roles": "", "status": ACTIVE,
                  "identities": ref, "email_verified": "1"}  # fmt: skip
        data = {"provider": identity.provider, "email": email, "name": name}
        for _ in range(ATTEMPTS):
            uid, new = await self._sign_up(keyspace.identity(ref), shard_of(ref), fields, data)
            if new is not None:
                return new, True
            stored = await self._profile(keys=[keyspace.user(uid)], args=[email, name])
            if stored:
                return _user(uid, dict(zip(stored[::2], stored[1::2], strict=True))), False
            await self._drop_index(keyspace.identity(ref), uid)
        raise RuntimeError(f"the index of {ref} kept pointing at deleted users")

    async def _sign_up(
        self, index: str, shard: str, fields: dict[str, str], data: dict[str, str]
    ) -> tuple[str, User | None]:
        """The id of the user `index` (in `shard`) points at, or of a new one made of
        `fields`, created beside the index; (id, the new user or None)."""
        uid = keyspace.draw(shard, new_id)
        now = time.time()
        event = self._outbox.event(USER_CREATED, uid, {"user_id": uid, **data})
        fields = {**fields, "created": str(now)}
        found, created = await self._find_or_create(
            keys=[index, keyspace.user(uid), stream_of(uid)],
            args=[uid, event["routing_key"], event["event"], *flat(fields)],
        )
        if not int(created):
            return found, None
        await self._redis.zadd(keyspace.USERS, {uid: now})
        return uid, _user(uid, fields)

    async def _drop_index(self, index: str, uid: str) -> None:
        await self._release(keys=[index], args=[uid])

    async def get(self, uid: str) -> User | None:
        fields = await self._redis.hgetall(keyspace.user(uid))
        return _user(uid, fields) if fields else None

    async def page(
        self, *, query: str = "", cursor: int = 0, limit: int = 50
    ) -> tuple[list[User], int | None]:
        """Users by creation, `limit` per page, filtered by a substring of email or name.

        The cursor is a position in the creation order; filtering scans forward from it,
        so a page may cover more than `limit` users but never returns more.
        """
        found: list[User] = []
        position: int = cursor
        needle = query.lower()
        while len(found) < limit:
            uids = await self._redis.zrange(keyspace.USERS, position, position + 199)
            if not uids:
                return found, None
            for offset, uid in enumerate(uids):
                user = await self.get(uid)
                if user and (
                    not needle or needle in user.email.lower() or needle in user.name.lower()
                ):
                    found.append(user)
                    if len(found) == limit:
                        return found, position + offset + 1
            position += len(uids)
        return found, position

    async def find(self, ref: str) -> list[User]:
        """Users by id or by exact email (emails are not unique across providers)."""
        user = await self.get(ref)
        if user is not None:
            return [user]
        matches: list[User] = []
        cursor: int | None = 0
        while cursor is not None:
            page, cursor = await self.page(cursor=cursor, limit=200)
            matches += [u for u in page if u.email.lower() == ref.lower()]
        return matches

    async def set_roles(self, uid: str, roles: frozenset[str], actor: str) -> None:
        await self._update(uid, "roles", " ".join(sorted(roles)), sorted(roles), actor)

    async def set_status(self, uid: str, status: str, actor: str) -> None:
        await self._update(uid, "status", status, status, actor)

    async def _update(
        self, uid: str, field: str, stored: str, reported: object, actor: str
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keyspace.user(uid), field, stored)
            self._outbox.queue(
                pipe, USER_UPDATED, uid, {"user_id": uid, field: reported, "by": actor}
            )
            await pipe.execute()

    async def delete(self, user: User, actor: str) -> None:
        """The user first (with its event), then its indexes and its place in the listing."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keyspace.user(user.id))
            self._outbox.queue(pipe, USER_DELETED, user.id, {"user_id": user.id, "by": actor})
            await pipe.execute()
        for index in [keyspace.identity(ref) for ref in user.identities] + (
            [keyspace.local(user.email)] if user.email else []
        ):
            await self._drop_index(index, user.id)
        await self._redis.zrem(keyspace.USERS, user.id)

    async def link(self, user: User, identity: Identity) -> bool:
        """Attach another provider's identity to `user` (platform.connected); False when
        that identity already belongs to a user (this one included), or `user` is gone."""
        ref = f"{identity.provider}:{identity.subject}"
        index = keyspace.identity(ref)
        if not await self._redis.set(index, user.id, nx=True):
            return False
        event = self._outbox.event(PLATFORM_CONNECTED, user.id, {
            "user_id": user.id, "provider": identity.provider, "subject": identity.subject,
        })  # fmt: skip
        attached = await self._attach(
            keys=[keyspace.user(user.id), stream_of(user.id)],
            args=[ref, event["routing_key"], event["event"]],
        )
        if not int(attached):  # deleted meanwhile: give the identity back
            await self._drop_index(index, user.id)
        return bool(int(attached))

    # --- local accounts ---

    async def create_local(self, email: str, name: str, password_hash: str) -> User | None:
        """A local account; None when the email is taken (by a local account)."""
        fields = {"email": email, "name": name, "roles": "", "status": ACTIVE,
                  "identities": f"local:{email.lower()}", "password": password_hash,
                  # Nobody has checked the address yet: it stays out of X-Auth-Email.
                  "email_verified": "0"}  # fmt: skip
        data = {"provider": "local", "email": email, "name": name}
        index = keyspace.local(email)
        for _ in range(ATTEMPTS):
            uid, new = await self._sign_up(index, shard_of(email.lower()), fields, data)
            if new is not None:
                return new
            if await self.get(uid) is not None:
                return None
            await self._drop_index(index, uid)
        raise Conflict("the address kept pointing at removed accounts: try again")

    async def local_owner(self, email: str) -> str | None:
        """The id of the local account of `email`, if there is one."""
        uid: str | None = await self._redis.get(keyspace.local(email))
        return uid

    async def local_credentials(self, email: str) -> tuple[str, str] | None:
        uid = await self._redis.get(keyspace.local(email))
        if uid is None:
            return None
        password = await self._redis.hget(keyspace.user(uid), "password")
        return (uid, password) if password else None

    async def set_password_hash(self, uid: str, password_hash: str) -> None:
        await self._redis.hset(keyspace.user(uid), "password", password_hash)


def new_id() -> str:
    # Never starting with "-": ids are typed on command lines (`admin promote ID`), where a
    # leading dash reads as a flag (1 id in 64 did, and failed the CLI).
    while (uid := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return uid
