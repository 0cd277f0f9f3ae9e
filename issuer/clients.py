"""Service accounts: API clients without a browser, owned by the issuer (issue 18).

The keys (issuer/keyspace.py): the account's hash (name, kind, roles, scopes, status,
created, credentials) and the set of the sids of its live tokens, both in the shard of its
id, where its tokens' sids are drawn too; the listing by creation time.

Two kinds. A `service` account signs in as itself with the client credentials grant (RFC
6749 §4.4) and holds one or two credentials, so a secret can be rotated without downtime:
a client secret (shown once, stored only as an argon2id hash) or a public key (one JWK, or
a JWKS URL) for `private_key_jwt` (RFC 7523). A `device` client is a command-line tool a
person signs in through (RFC 8628); it is public and holds no credential.

Each token of a service account gets a session record of its own (the contract's
`authgate:{shard}:session:<sid>`, kind `client`), with the token's scope and the credential that
got it, so the verifier checks a client token exactly as a person's, and suspending or
deleting the account, or removing a credential, ends its tokens as a revocation does.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from authgate.contract import KIND_CLIENT, session_key

from . import keyspace
from .errors import Conflict, InvalidRequest
from .outbox import (
    CLIENT_CREATED,
    CLIENT_CREDENTIAL_ROTATED,
    CLIENT_DELETED,
    CLIENT_SUSPENDED,
    CLIENT_UPDATED,
    Outbox,
)
from .records import session_record
from .sessions import Sessions, draw_sid
from .users import ACTIVE, SUSPENDED

SERVICE, DEVICE = "service", "device"
KINDS = (SERVICE, DEVICE)
SECRET, JWK, JWKS_URL = "secret", "jwk", "jwks_url"
#: One to rotate to while the other is still in use.
MAX_CREDENTIALS = 2
#: Marks our client secrets and ids (for secret scanners and for people reading logs).
SECRET_PREFIX = "ags_"  # noqa: S105 - a prefix, not a secret
ID_PREFIX = "agc_"
#: What the ids we give out look like; anything else names no client or credential.
CLIENT_ID = re.compile(r"agc_[A-Za-z0-9_-]{16}")
CREDENTIAL_ID = re.compile(r"cred_[A-Za-z0-9_-]{12}")
#: The session field naming the credential a token was got with.
FIELD_CREDENTIAL = "credential"
ATTEMPTS = 5


@dataclass(frozen=True)
class Credential:
    id: str
    type: str
    created: float
    #: argon2id hash (secret), the public JWK (jwk) or the URL (jwks_url).
    value: Any

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "type": self.type, "created": self.created}
        if self.type == JWK:
            shown["jwk"] = self.value
        elif self.type == JWKS_URL:
            shown["jwks_url"] = self.value
        return shown  # never the secret's hash


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    kind: str
    roles: frozenset[str]
    scopes: frozenset[str]
    status: str
    created: float
    credentials: tuple[Credential, ...] = field(default=())

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def credential(self, credential_id: str) -> Credential | None:
        return next((c for c in self.credentials if c.id == credential_id), None)

    def public(self) -> dict[str, Any]:
        return {
            "client_id": self.id, "name": self.name, "kind": self.kind,
            "roles": sorted(self.roles), "scopes": sorted(self.scopes), "status": self.status,
            "created": self.created, "credentials": [c.public() for c in self.credentials],
        }  # fmt: skip


def _client(cid: str, fields: dict[str, str]) -> Client:
    credentials = tuple(
        Credential(id=c["id"], type=c["type"], created=c["created"], value=c["value"])
        for c in json.loads(fields.get("credentials") or "[]")
    )
    return Client(
        id=cid, name=fields.get("name", ""), kind=fields.get("kind", SERVICE),
        roles=frozenset(fields.get("roles", "").split()),
        scopes=frozenset(fields.get("scopes", "").split()), status=fields.get("status", ACTIVE),
        created=float(fields.get("created", 0)), credentials=credentials,
    )  # fmt: skip


def _stored(credentials: tuple[Credential, ...]) -> str:
    return json.dumps(
        [{"id": c.id, "type": c.type, "created": c.created, "value": c.value} for c in credentials]
    )


def new_client_id() -> str:
    return ID_PREFIX + secrets.token_urlsafe(12)


def new_credential_id() -> str:
    return "cred_" + secrets.token_urlsafe(9)


def new_secret(credential_id: str) -> str:
    """A client secret that names its credential, so one hash check finds it."""
    return f"{SECRET_PREFIX}{credential_id}.{secrets.token_urlsafe(32)}"


class Clients:
    def __init__(self, redis: aioredis.Redis, outbox: Outbox, sessions: Sessions) -> None:
        self._redis = redis
        self._outbox = outbox
        #: A person's sessions made through a device client end as the person's do.
        self._sessions = sessions

    async def create(
        self, name: str, kind: str, roles: frozenset[str], scopes: frozenset[str], actor: str
    ) -> Client:
        if kind not in KINDS:
            raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
        cid = new_client_id()
        now = time.time()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keyspace.client(cid), mapping={
                "name": name, "kind": kind, "roles": " ".join(sorted(roles)),
                "scopes": " ".join(sorted(scopes)), "status": ACTIVE, "created": str(now),
                "credentials": "[]",
            })  # fmt: skip
            self._outbox.queue(pipe, CLIENT_CREATED, cid, {
                "client_id": cid, "name": name, "kind": kind, "roles": sorted(roles),
                "scopes": sorted(scopes), "by": actor,
            })  # fmt: skip
            await pipe.execute()
        await self._redis.zadd(keyspace.CLIENTS, {cid: now})  # after: see issuer/keyspace.py
        return Client(cid, name, kind, roles, scopes, ACTIVE, now)

    async def get(self, cid: str) -> Client | None:
        fields = await self._redis.hgetall(keyspace.client(cid))
        return _client(cid, fields) if fields else None

    async def listed(self) -> list[Client]:
        """Every account, oldest first (service accounts are few: no paging)."""
        found = []
        for cid in await self._redis.zrange(keyspace.CLIENTS, 0, -1):
            client = await self.get(cid)
            if client is not None:
                found.append(client)
        return found

    async def add_credential(
        self, cid: str, credential_id: str, type_: str, value: Any, actor: str
    ) -> Credential:
        """A new credential (secret hash, JWK or JWKS URL); the account keeps at most two."""
        credential = Credential(id=credential_id, type=type_, created=time.time(), value=value)
        await self._change(
            cid,
            lambda c: _with_credential(c, credential),
            CLIENT_CREDENTIAL_ROTATED,
            {"added": credential.id, "type": type_, "by": actor},
        )
        return credential

    async def remove_credential(self, cid: str, credential_id: str, actor: str) -> int:
        """Remove a credential; the tokens it got end at once. The number ended."""
        await self._change(
            cid,
            lambda c: _without_credential(c, credential_id),
            CLIENT_CREDENTIAL_ROTATED,
            {"removed": credential_id, "by": actor},
        )
        return await self.end_sessions(cid, "credential_removed", credential=credential_id)

    async def set_status(self, cid: str, status: str, actor: str) -> int:
        """Suspend (every token ends at once) or reactivate; the number of tokens ended."""
        kind = CLIENT_SUSPENDED if status == SUSPENDED else CLIENT_UPDATED
        await self._change(cid, lambda c: {"status": status}, kind, {"status": status, "by": actor})
        return await self.end_sessions(cid, "client_suspended") if status == SUSPENDED else 0

    async def set_grants(
        self, cid: str, roles: frozenset[str], scopes: frozenset[str], actor: str
    ) -> int:
        """New roles and scopes. Tokens got under the old ones end: clients get new ones
        (a client credentials client asks again on a 401). The number ended."""
        await self._change(
            cid,
            lambda c: {"roles": " ".join(sorted(roles)), "scopes": " ".join(sorted(scopes))},
            CLIENT_UPDATED,
            {"roles": sorted(roles), "scopes": sorted(scopes), "by": actor},
        )
        return await self.end_sessions(cid, "client_updated")

    async def delete(self, cid: str, actor: str) -> None:
        """Tokens first (verifiers refuse at once), then the account."""
        await self.end_sessions(cid, "client_deleted")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keyspace.client(cid), keyspace.client_sessions(cid))
            self._outbox.queue(pipe, CLIENT_DELETED, cid, {"client_id": cid, "by": actor})
            await pipe.execute()
        await self._redis.zrem(keyspace.CLIENTS, cid)

    async def start_session(
        self, client: Client, credential_id: str, scope: str, ttl: float
    ) -> str | None:
        """A session for one token of `client`, got with `credential_id`: its sid, or None
        when the account was suspended or the credential removed meanwhile (checked in the
        script that writes it, so a suspension landing during the request can't miss this
        token)."""
        sid = draw_sid(client.id)
        for _ in range(ATTEMPTS):
            current = await self.get(client.id)
            if current is None or not current.active or not current.credential(credential_id):
                return None
            _, fields, _ = session_record(
                sid, sub=client.id, ttl=ttl, roles=current.roles, scope=scope,
                name=current.name,
                extra={"kind": KIND_CLIENT, "client": client.id,
                       FIELD_CREDENTIAL: credential_id, "created": str(time.time())},
            )  # fmt: skip
            # The grants it was built from, unchanged when it is written: a change
            # landing meanwhile ends the account's tokens, and can't miss this one.
            unchanged = {
                "roles": " ".join(sorted(current.roles)),
                "scopes": " ".join(sorted(current.scopes)),
                "name": current.name,
            }
            if await self._sessions.start(
                sid, keyspace.client(client.id), keyspace.client_sessions(client.id), ttl,
                fields, owner=client.id, expect=unchanged, credential=credential_id,
            ):  # fmt: skip
                return sid
        raise RuntimeError(f"client {client.id} kept changing while a token was being issued")

    async def track(self, cid: str, sid: str) -> None:
        """Index a person's session made through device client `cid`, so that suspending
        or deleting the client ends it too."""
        await self._redis.sadd(keyspace.client_sessions(cid), sid)

    async def end_sessions(self, cid: str, reason: str, credential: str | None = None) -> int:
        """End the sessions of the account's tokens (of one credential, if given), and the
        people's sessions made through it; the number ended. Expired sids are pruned."""
        ended = 0
        index = keyspace.client_sessions(cid)
        for sid in await self._redis.smembers(index):
            sub, kind, held = await self._redis.hmget(
                session_key(sid), "sub", "kind", FIELD_CREDENTIAL
            )
            if sub is not None and credential is not None and held != credential:
                continue
            if sub is not None and kind != KIND_CLIENT:
                await self._sessions.end(sid, sub, reason)  # a person's: their index, events
                await self._redis.srem(index, sid)
            else:
                await self._sessions.close(sid, index, owner=cid)
            ended += sub is not None
        return ended

    async def _change(
        self,
        cid: str,
        change: Callable[[Client], dict[str, str]],
        event: str,
        data: dict[str, Any],
    ) -> Client:
        """Apply `change(client) -> fields` to the account atomically, with its event."""
        key = keyspace.client(cid)
        for _ in range(ATTEMPTS):
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(key)
                fields = await pipe.hgetall(key)
                if not fields:
                    await pipe.unwatch()
                    raise LookupError(cid)
                client = _client(cid, fields)
                updates = change(client)
                pipe.multi()
                pipe.hset(key, mapping=updates)
                self._outbox.queue(pipe, event, cid, {"client_id": cid, **data})
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return _client(cid, {**fields, **updates})
        raise RuntimeError(f"client {cid} kept changing")


def _with_credential(client: Client, credential: Credential) -> dict[str, str]:
    if client.kind != SERVICE:
        raise InvalidRequest("only service accounts hold credentials (device clients are public)")
    if len(client.credentials) >= MAX_CREDENTIALS:
        raise Conflict(
            f"the account holds {MAX_CREDENTIALS} credentials: remove one before adding another"
        )
    return {"credentials": _stored((*client.credentials, credential))}


def _without_credential(client: Client, credential_id: str) -> dict[str, str]:
    if client.credential(credential_id) is None:
        raise LookupError(credential_id)
    kept = tuple(c for c in client.credentials if c.id != credential_id)
    return {"credentials": _stored(kept)}
