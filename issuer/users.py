"""Users in Redis, keyed by (provider, subject) — never by email.

authgate:user:{uid}                    hash: email, name, roles, status, created,
                                             identities[, password]
authgate:identity:{provider}:{subject} → uid
authgate:local:{email}                 → uid (local accounts)
authgate:users                         sorted set of uids by creation time (listing)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from .errors import Conflict
from .outbox import PLATFORM_CONNECTED, STREAM, USER_CREATED, USER_DELETED, USER_UPDATED, Outbox
from .providers import Identity

USER = "authgate:user:"
IDENTITY = "authgate:identity:"
LOCAL = "authgate:local:"
USERS = "authgate:users"
ACTIVE, SUSPENDED = "active", "suspended"

# Finds or creates the user of an identity in one step, so two concurrent first logins
# of the same person make one user, and a new user's user.created event is written with
# it. Returns {uid, created (1/0), the user's hash}.
_UPSERT = """
local uid = redis.call('GET', KEYS[1])
if uid then
  if ARGV[2] ~= '' then
    redis.call('HSET', ARGV[5] .. uid, 'email', ARGV[2], 'email_verified', '1')
  end
  if ARGV[3] ~= '' then redis.call('HSET', ARGV[5] .. uid, 'name', ARGV[3]) end
  return {uid, 0, redis.call('HGETALL', ARGV[5] .. uid)}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', ARGV[5] .. ARGV[1], 'email', ARGV[2], 'name', ARGV[3], 'roles', '',
           'status', 'active', 'created', ARGV[4], 'identities', ARGV[6], 'email_verified', '1')
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'routing_key', ARGV[7], 'event', ARGV[8])
return {ARGV[1], 1, redis.call('HGETALL', ARGV[5] .. ARGV[1])}
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


# Attaches an identity to an existing user unless it belongs to someone: {1} or {0, owner}.
_LINK = """
local owner = redis.call('GET', KEYS[1])
if owner then return {0, owner} end
redis.call('SET', KEYS[1], ARGV[1])
local ids = redis.call('HGET', KEYS[2], 'identities') or ''
redis.call('HSET', KEYS[2], 'identities', ids .. ' ' .. ARGV[2])
redis.call('XADD', KEYS[3], '*', 'routing_key', ARGV[3], 'event', ARGV[4])
return {1, ARGV[1]}
"""


class Users:
    def __init__(self, redis: aioredis.Redis, outbox: Outbox) -> None:
        self._redis = redis
        self._outbox = outbox
        self._upsert = redis.register_script(_UPSERT)
        self._link = redis.register_script(_LINK)

    async def upsert(self, identity: Identity) -> tuple[User, bool]:
        """The user behind `identity`, created on first login; (user, created)."""
        email = identity.email if identity.email_verified and identity.email else ""
        ref = f"{identity.provider}:{identity.subject}"
        uid = new_id()
        name = identity.name or ""
        data = {"user_id": uid, "provider": identity.provider, "email": email, "name": name}
        created_event = self._outbox.event(USER_CREATED, uid, data)
        uid, created, flat = await self._upsert(
            keys=[IDENTITY + ref, USERS, STREAM],
            args=[uid, email, identity.name or "", time.time(), USER, ref,
                  created_event["routing_key"], created_event["event"]],
        )  # fmt: skip
        return _user(uid, dict(zip(flat[::2], flat[1::2], strict=True))), bool(int(created))

    async def get(self, uid: str) -> User | None:
        fields = await self._redis.hgetall(USER + uid)
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
            uids = await self._redis.zrange(USERS, position, position + 199)
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
            pipe.hset(USER + uid, field, stored)
            self._outbox.queue(
                pipe, USER_UPDATED, uid, {"user_id": uid, field: reported, "by": actor}
            )
            await pipe.execute()

    async def delete(self, user: User, actor: str) -> None:
        keys = [USER + user.id, *(IDENTITY + ref for ref in user.identities)]
        if user.email:
            local = LOCAL + user.email.lower()
            if await self._redis.get(local) == user.id:
                keys.append(local)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            pipe.zrem(USERS, user.id)
            self._outbox.queue(pipe, USER_DELETED, user.id, {"user_id": user.id, "by": actor})
            await pipe.execute()

    async def link(self, user: User, identity: Identity) -> bool:
        """Attach another provider's identity to `user` (platform.connected); False when
        that identity already belongs to a user (this one included)."""
        ref = f"{identity.provider}:{identity.subject}"
        event = self._outbox.event(PLATFORM_CONNECTED, user.id, {
            "user_id": user.id, "provider": identity.provider, "subject": identity.subject,
        })  # fmt: skip
        linked, _ = await self._link(
            keys=[IDENTITY + ref, USER + user.id, STREAM],
            args=[user.id, ref, event["routing_key"], event["event"]],
        )
        return bool(int(linked))

    # --- local accounts ---

    async def create_local(self, email: str, name: str, password_hash: str) -> User | None:
        """A local account; None when the email is taken (by a local account)."""
        uid = new_id()
        if not await self._redis.set(LOCAL + email.lower(), uid, nx=True):
            return None
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(USER + uid, mapping={
                "email": email, "name": name, "roles": "", "status": ACTIVE, "created": str(now),
                "identities": f"local:{email.lower()}", "password": password_hash,
                # Nobody has checked the address yet: it stays out of X-Auth-Email.
                "email_verified": "0",
            })  # fmt: skip
            pipe.zadd(USERS, {uid: now})
            data = {"user_id": uid, "provider": "local", "email": email, "name": name}
            self._outbox.queue(pipe, USER_CREATED, uid, data)
            await pipe.execute()
        user = await self.get(uid)
        if user is None:  # deleted in the moment since it was written
            raise Conflict("the account was removed as it was being created")
        return user

    async def local_owner(self, email: str) -> str | None:
        """The id of the local account of `email`, if there is one."""
        uid: str | None = await self._redis.get(LOCAL + email.lower())
        return uid

    async def local_credentials(self, email: str) -> tuple[str, str] | None:
        uid = await self._redis.get(LOCAL + email.lower())
        if uid is None:
            return None
        password = await self._redis.hget(USER + uid, "password")
        return (uid, password) if password else None

    async def set_password_hash(self, uid: str, password_hash: str) -> None:
        await self._redis.hset(USER + uid, "password", password_hash)


def new_id() -> str:
    # Never starting with "-": ids are typed on command lines (`admin promote ID`), where a
    # leading dash reads as a flag (1 id in 64 did, and failed the CLI).
    while (uid := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return uid
