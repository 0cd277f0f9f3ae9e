"""Access tokens (RFC 9068 JWTs), session tokens, and rotating refresh tokens.

Refresh tokens are opaque (256 random bits), stored only as SHA-256 hashes, rotated on
every use. A used token that comes back within `grace` seconds gets the very answer the
first use got (a client that sent two refreshes at once is not punished); the answer is
kept encrypted under a key derived from that token, so Redis never holds a usable token.
Later, a used token coming back is reuse: its whole session is revoked at once.

A token is kept in the shard of its hash (issuer/keyspace.py); a family's tokens and the
family itself are drawn in the shard of their session, so a rotation is one script.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authgate.contract import shard_of

from . import keyspace
from .clients import Client
from .errors import InvalidGrant
from .keys import KeyStore
from .sessions import Session, Sessions
from .signing import access_token_claims
from .users import ACTIVE, User, Users

SESSION_CLIENT = "authgate-session"
TOKEN_PREFIX = "agr_"  # noqa: S105 - marks our refresh tokens (for secret scanners)

# Marks an active refresh token used and stores its successor, or reports why not:
# {'ok'} | {'grace', blob} | {'reuse'} | {'missing'}. Atomic, so of two concurrent uses
# exactly one rotates.
_ROTATE = """
local old = redis.call('HGETALL', KEYS[1])
if #old == 0 then return {'missing'} end
local f = {}
for i = 1, #old, 2 do f[old[i]] = old[i + 1] end
local now = tonumber(ARGV[1])
if f.state == 'used' then
  if now - tonumber(f.used_at) <= tonumber(ARGV[2]) then return {'grace', f.grace} end
  return {'reuse'}
end
redis.call('HSET', KEYS[1], 'state', 'used', 'used_at', ARGV[1], 'grace', ARGV[3])
redis.call('HSET', KEYS[2], 'state', 'active', 'sid', f.sid, 'uid', f.uid, 'client_id', f.client_id,
           'scope', f.scope, 'family', f.family, 'absolute_exp', f.absolute_exp)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[3], KEYS[2])
return {'ok'}
"""


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    access_ttl: int
    refresh_idle_ttl: int
    refresh_grace: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: KeyStore,
        sessions: Sessions,
        users: Users,
        settings: TokenSettings,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._sessions = sessions
        self._users = users
        self._settings = settings
        self._rotate = redis.register_script(_ROTATE)

    def access_token(
        self, user: User, sid: str, client_id: str, scope: str, lifetime: float | None = None
    ) -> str:
        claims = access_token_claims(
            issuer=self._settings.issuer, audience=self._settings.audience, sub=user.id, sid=sid,
            client_id=client_id, lifetime=lifetime or self._settings.access_ttl, roles=user.roles,
            scope=scope,
        )  # fmt: skip
        return self._keys.signing_key().sign(claims)

    def client_token(self, client: Client, sid: str, scope: str) -> str:
        """A service account's access token (RFC 9068 §2.2: `sub` is the client's id when
        no person is involved), bound to the session record of this one token."""
        claims = access_token_claims(
            issuer=self._settings.issuer, audience=self._settings.audience, sub=client.id,
            sid=sid, client_id=client.id, lifetime=self._settings.access_ttl,
            roles=client.roles, scope=scope,
        )  # fmt: skip
        return self._keys.signing_key().sign(claims)

    def session_token(self, user: User, session: Session) -> str:
        """The browser's cookie: a token with the session's sid, living as long as it."""
        return self.access_token(
            user, session.sid, SESSION_CLIENT, "", session.expires_at - time.time()
        )

    async def issue(
        self, user: User, session: Session, client_id: str, scope: str = ""
    ) -> dict[str, Any]:
        """A new access/refresh pair bound to `session` (a new refresh family)."""
        shard = shard_of(session.sid)
        refresh = new_refresh_token(shard)
        family = keyspace.draw(shard, lambda: secrets.token_urlsafe(16))
        key = keyspace.refresh(token_hash(refresh))
        absolute = session.expires_at
        ttl_ms = self._ttl_ms(absolute)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={
                "state": "active", "sid": session.sid, "uid": user.id, "client_id": client_id,
                "scope": scope, "family": family, "absolute_exp": str(absolute),
            })  # fmt: skip
            pipe.pexpire(key, ttl_ms)
            pipe.sadd(keyspace.family(family), key)
            pipe.pexpire(keyspace.family(family), max(ttl_ms, int((absolute - time.time()) * 1000)))
            await pipe.execute()
        return self._response(
            self.access_token(user, session.sid, client_id, scope), refresh, scope
        )

    async def refresh(self, token: str) -> dict[str, Any]:
        key = keyspace.refresh(token_hash(token))
        fields = await self._redis.hgetall(key)
        if not fields:
            raise InvalidGrant("refresh token unknown or expired")
        if fields["state"] == "active":
            session = await self._sessions.get(fields["sid"])
            user = await self._users.get(fields["uid"])
            if session is None or user is None or user.status != ACTIVE:
                await self._drop_family(fields)
                raise InvalidGrant("the session has ended")
            successor = new_refresh_token(shard_of(token_hash(token)))
            access = self.access_token(user, session.sid, fields["client_id"], fields["scope"])
            response = self._response(access, successor, fields["scope"])
            outcome = await self._rotate(
                keys=[key, keyspace.refresh(token_hash(successor)),
                      keyspace.family(fields["family"])],
                args=[time.time(), self._settings.refresh_grace, _seal(token, response),
                      self._ttl_ms(float(fields["absolute_exp"]))],
            )  # fmt: skip
            if outcome[0] == "ok":
                return response
        elif time.time() - float(fields["used_at"]) <= self._settings.refresh_grace:
            outcome = ["grace", fields["grace"]]  # used is final: no race to guard against
        else:
            outcome = ["reuse"]
        if outcome[0] == "grace":
            return _open(token, outcome[1])
        if outcome[0] == "reuse":
            await self._revoke_family(fields, "refresh_token_reuse")
            raise InvalidGrant("refresh token reused: the session is revoked")
        raise InvalidGrant("refresh token unknown or expired")

    async def revoke(self, token: str) -> bool:
        """RFC 7009 for refresh tokens: ends the token's session. False if not ours."""
        fields = await self._redis.hgetall(keyspace.refresh(token_hash(token)))
        if not fields:
            return False
        await self._revoke_family(fields, "revoked")
        return True

    async def _revoke_family(self, fields: dict[str, str], reason: str) -> None:
        """End the token's session (every verifier refuses it at once) and its tokens."""
        await self._sessions.end(fields["sid"], fields["uid"], reason)
        await self._drop_family(fields)

    async def _drop_family(self, fields: dict[str, str]) -> None:
        family = keyspace.family(fields["family"])
        members = await self._redis.smembers(family)
        await self._redis.delete(family, *members)

    def _ttl_ms(self, absolute: float) -> int:
        return max(1, int(min(self._settings.refresh_idle_ttl, absolute - time.time()) * 1000))

    def _response(self, access: str, refresh: str, scope: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self._settings.access_ttl,
            "refresh_token": refresh,
        }
        if scope:
            body["scope"] = scope
        return body


def new_refresh_token(shard: str) -> str:
    """256 random bits, marked as ours, whose hash lies in `shard`."""
    return keyspace.draw(shard, lambda: TOKEN_PREFIX + secrets.token_urlsafe(32), of=token_hash)


def _grace_key(token: str) -> bytes:
    # Domain-separated from the storage hash, so the record's name does not open it.
    return hashlib.sha256(b"authgate refresh grace\x00" + token.encode()).digest()


def _seal(token: str, response: dict[str, Any]) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_grace_key(token)).encrypt(nonce, json.dumps(response).encode(), None)
    return base64.b64encode(nonce + sealed).decode()


def _open(token: str, blob: str) -> dict[str, Any]:
    raw = base64.b64decode(blob)
    data: dict[str, Any] = json.loads(AESGCM(_grace_key(token)).decrypt(raw[:12], raw[12:], None))
    return data
