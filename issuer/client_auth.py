"""Who is asking at the token endpoint: client authentication (RFC 6749 §2.3, RFC 7523).

Three methods for service accounts — `client_secret_basic`, `client_secret_post` and
`private_key_jwt` — and `none` for a public device client (RFC 8628 §3.1), which only
names itself. More than one method in a request is refused (RFC 6749 §2.3).

A secret names its credential (`ags_<credential id>.<random>`), so exactly one argon2id
check is made whatever is wrong: an unknown client, an unknown credential and a wrong
secret cost the same, and the answer is the same `invalid_client`. A failure is logged
with the client id and the reason, never the secret or the assertion.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import jwt
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from authgate.contract import ASYMMETRIC_ALGORITHMS, DEFAULT_LEEWAY
from authgate.errors import Unavailable
from authgate.jose import Key, KeyFetchError, parse_jwks
from authgate.jwks import KeySet

from .clients import CLIENT_ID, JWK, JWKS_URL, SECRET, SECRET_PREFIX, Client, Clients
from .errors import InvalidClient, InvalidRequest

log = logging.getLogger("authgate.issuer")

#: argon2id, lighter than for passwords: a client secret carries 256 random bits, so no
#: work factor adds to what guessing it would cost, while every token request pays it (a
#: heavy one is a way to exhaust the issuer's CPU). 1 pass over 8 MiB: about 10 ms.
HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
_DUMMY_HASH = HASHER.hash("authgate: not a client secret of anyone's")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BASIC, POST, PRIVATE_KEY_JWT, NONE = (
    "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
)  # fmt: skip
METHODS = (BASIC, POST, PRIVATE_KEY_JWT, NONE)
#: An assertion may live this long at most (its `jti` is remembered as long).
MAX_ASSERTION_LIFETIME = 600
MAX_ASSERTION_LENGTH = 8192
JTI_SEEN = "authgate:client-assertion:"
#: Bound on the JWKS URLs whose keys are held in memory.
MAX_KEY_SETS = 1000


@dataclass(frozen=True)
class Authenticated:
    client: Client
    #: The credential used; "" for a public client (method `none`).
    credential: str
    method: str


class ClientAuthenticator:
    def __init__(self, redis: aioredis.Redis, clients: Clients, audiences: tuple[str, ...]):
        self._redis = redis
        self._clients = clients
        #: What an assertion's `aud` may name: our token endpoint or our issuer URL.
        self._audiences = audiences
        self._key_sets: dict[str, KeySet] = {}

    async def authenticate(
        self, authorization: str | None, fields: dict[str, str]
    ) -> Authenticated:
        """The client of a token request; raises InvalidClient or InvalidRequest."""
        used = [
            name for name, present in (
                (BASIC, authorization is not None),
                (POST, "client_secret" in fields),
                (PRIVATE_KEY_JWT, "client_assertion" in fields
                 or "client_assertion_type" in fields),
            ) if present
        ]  # fmt: skip
        if len(used) > 1:
            raise InvalidRequest("use one client authentication method, not " + " and ".join(used))
        method = used[0] if used else NONE
        if method == BASIC:
            cid, secret = _basic(authorization or "")
            if fields.get("client_id", cid) != cid:
                raise InvalidRequest("client_id differs from the Authorization header's")
            return await self._secret(cid, secret, BASIC)
        if method == POST:
            return await self._secret(fields.get("client_id", ""), fields["client_secret"], POST)
        if method == PRIVATE_KEY_JWT:
            return await self._assertion(fields)
        cid = fields.get("client_id", "")
        client = await self._clients.get(cid) if CLIENT_ID.fullmatch(cid) else None
        if client is None or client.credentials:
            # A confidential client must authenticate; an unknown one is nobody.
            raise self._failed(cid, NONE, "no client authentication")
        if not client.active:
            raise self._failed(cid, NONE, "client suspended")
        return Authenticated(client, "", NONE)

    async def _secret(self, cid: str, secret: str, method: str) -> Authenticated:
        client = await self._clients.get(cid) if CLIENT_ID.fullmatch(cid) else None
        credential_id = secret.removeprefix(SECRET_PREFIX).partition(".")[0]
        credential = client.credential(credential_id) if client is not None else None
        stored = credential.value if credential is not None and credential.type == SECRET else None
        try:  # exactly one argon2 check whatever is wrong: the same cost either way
            await asyncio.to_thread(HASHER.verify, stored or _DUMMY_HASH, secret)
            matched = stored is not None
        except (VerificationError, InvalidHashError):
            matched = False
        if client is None or not matched:
            raise self._failed(cid, method, "unknown client or wrong secret")
        if not client.active:
            raise self._failed(cid, method, "client suspended")
        return Authenticated(client, credential_id, method)

    async def _assertion(self, fields: dict[str, str]) -> Authenticated:
        if fields.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidRequest(f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = fields.get("client_assertion", "")
        if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
            raise InvalidRequest("client_assertion is missing or too long")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise self._failed(fields.get("client_id", ""), PRIVATE_KEY_JWT, "malformed") from None
        sub = unverified.get("sub")
        cid = sub if isinstance(sub, str) else ""
        if fields.get("client_id", cid) != cid:
            raise InvalidRequest("client_id differs from the assertion's sub")
        client = await self._clients.get(cid) if CLIENT_ID.fullmatch(cid) else None
        if client is None:
            raise self._failed(cid, PRIVATE_KEY_JWT, "unknown client")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
            raise self._failed(cid, PRIVATE_KEY_JWT, f"algorithm {str(alg)[:16]!r} not allowed")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        for credential in client.credentials:
            key = await self._key(credential.type, credential.value, kid)
            if key is None or key.algorithm != alg:
                continue
            claims = self._verified(assertion, key, cid)
            if claims is None:
                continue
            await self._first_use(cid, claims)
            if not client.active:
                raise self._failed(cid, PRIVATE_KEY_JWT, "client suspended")
            return Authenticated(client, credential.id, PRIVATE_KEY_JWT)
        raise self._failed(cid, PRIVATE_KEY_JWT, "no registered key verifies the assertion")

    def _verified(self, assertion: str, key: Key, cid: str) -> dict[str, Any] | None:
        """The assertion's claims when `key` signed it and RFC 7523 §3's checks pass."""
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion, key.key, algorithms=[key.algorithm], audience=list(self._audiences),
                issuer=cid, leeway=DEFAULT_LEEWAY,
                options={"require": ["iss", "sub", "aud", "exp", "jti"], "strict_aud": False},
            )  # fmt: skip
        except jwt.InvalidSignatureError:
            return None
        except jwt.InvalidTokenError as exc:
            raise self._failed(cid, PRIVATE_KEY_JWT, f"assertion: {type(exc).__name__}") from None
        if not isinstance(claims["jti"], str) or not 0 < len(claims["jti"]) <= 256:
            raise self._failed(cid, PRIVATE_KEY_JWT, "assertion: bad jti")
        if float(claims["exp"]) > time.time() + MAX_ASSERTION_LIFETIME + DEFAULT_LEEWAY:
            raise self._failed(cid, PRIVATE_KEY_JWT, "assertion lives too long")
        return claims

    async def _first_use(self, cid: str, claims: dict[str, Any]) -> None:
        """RFC 7523 §3 item 7: a `jti` is accepted once (remembered until it expires)."""
        digest = hashlib.sha256(claims["jti"].encode()).hexdigest()
        lifetime = float(claims["exp"]) - time.time() + DEFAULT_LEEWAY
        first = await self._redis.set(
            f"{JTI_SEEN}{cid}:{digest}", "1", nx=True, px=max(1000, int(lifetime * 1000))
        )
        if not first:
            raise self._failed(cid, PRIVATE_KEY_JWT, "assertion replayed (jti seen before)")

    async def _key(self, type_: str, value: Any, kid: str | None) -> Key | None:
        if type_ == JWK:
            jwk = value if isinstance(value, dict) else {}
            if kid is not None and jwk.get("kid") != kid:
                return None
            try:
                return next(iter(parse_jwks({"keys": [jwk]}, ASYMMETRIC_ALGORITHMS).values()))
            except KeyFetchError:
                return None
        if type_ == JWKS_URL and kid is not None:
            key_set = self._key_sets.get(value)
            if key_set is None:
                if len(self._key_sets) >= MAX_KEY_SETS:
                    await self.close()
                key_set = self._key_sets[value] = KeySet(
                    url=value, file=None, algorithms=ASYMMETRIC_ALGORITHMS
                )
            try:
                return await key_set.lookup(kid)
            except Unavailable as exc:
                log.warning("client jwks %s unavailable: %s", value, exc)
                return None
        return None

    def _failed(self, cid: str, method: str, reason: str) -> InvalidClient:
        shown = cid if CLIENT_ID.fullmatch(cid) else "(malformed or none)"
        log.info("client auth failure: client=%s method=%s reason=%s", shown, method, reason)
        return InvalidClient("client authentication failed", basic=method == BASIC)

    async def close(self) -> None:
        for key_set in self._key_sets.values():
            await key_set.close()
        self._key_sets.clear()


def _basic(authorization: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: HTTP Basic with the id and secret form-urlencoded first."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClient("use HTTP Basic for the client's credentials", basic=True)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed HTTP Basic credentials", basic=True) from None
    cid, colon, secret = decoded.partition(":")
    if not colon:
        raise InvalidClient("malformed HTTP Basic credentials", basic=True)
    return unquote_plus(cid), unquote_plus(secret)


def key_of(jwk: Any) -> dict[str, Any]:
    """A public JWK fit to register: parsed (an allowed asymmetric algorithm), no private
    part, and a `kid` (its RFC 7638 thumbprint when it had none). Raises ValueError."""
    if not isinstance(jwk, dict):
        raise ValueError("the key must be a JWK: a JSON object")
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise ValueError("that JWK holds a private or symmetric key: register the public key")
    given = dict(jwk)
    given.setdefault("kid", thumbprint(given))
    try:
        parse_jwks({"keys": [given]}, ASYMMETRIC_ALGORITHMS)
    except KeyFetchError as exc:
        raise ValueError(f"not a usable public signing key: {exc}") from None
    return given


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, base64url."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "RSA": ("e", "kty", "n"),
    }
    members = required.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise ValueError("the JWK needs kty EC, OKP or RSA with its public members")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
