"""The verifier ⇄ issuer contract (DESIGN.md, "The contract"), in one place.

Both services import these names; neither spells a key, channel, claim or header itself.
"""

from __future__ import annotations

import re
import zlib
from typing import Final

# --- Tokens (RFC 9068 access tokens, also used as the browser session token) ---

#: JOSE `typ` values accepted for access tokens. RFC 9068 §2.1 registers `at+jwt`;
#: §4 says `application/at+jwt` is the same media type spelled in full.
ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
ACCESS_TOKEN_TYPS: Final = frozenset({"at+jwt", "application/at+jwt"})

#: Claims every access token and session token must carry: RFC 9068 §2.2 plus `sid`.
REQUIRED_CLAIMS: Final = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "sid")

#: Algorithms the issuer may sign with and a verifier may be told to accept. Only
#: asymmetric ones: a verifier holds public keys, and HMAC "keyed with the public key"
#: is the classic algorithm-confusion attack.
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
DEFAULT_ALGORITHMS: Final = ("EdDSA", "ES256")

#: Clock skew allowed on `exp`, `nbf` and `iat`, seconds, unless a verifier is told
#: otherwise; the issuer checks its own tokens with it too.
DEFAULT_LEEWAY: Final = 30

#: Where the services find Redis and RabbitMQ on one machine (DESIGN: sane defaults).
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"

#: What a `sid` looks like: URL-safe base64 characters, at most 128 of them. The
#: verifier refuses any other; it also bounds what reaches a Redis key name.
SID_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: Where the issuer publishes its signing keys, relative to its base URL.
JWKS_PATH: Final = "/.well-known/jwks.json"

# --- Sessions in Redis ---

#: Every key of the issuer's data carries one of 16 shards as a Redis hash tag,
#: `authgate:{<shard>}:<name>`, so that what one script or transaction touches lies in one
#: hash slot of a Redis Cluster. The shard of an id is the CRC-32 of its text modulo 16,
#: as one hexadecimal digit: any id has one, and the issuer draws the ids of what must lie
#: beside an account (its sessions, refresh tokens) until they fall in the account's shard.
SHARDS: Final = 16


def shard_of(ident: str) -> str:
    """The shard (`0`…`f`) that the thing named `ident` is kept in."""
    return f"{zlib.crc32(ident.encode()) % SHARDS:x}"


def shard_key(shard: str, name: str) -> str:
    """The Redis key of `name` in `shard`."""
    return "authgate:{" + shard + "}:" + name


#: On any change to a session the issuer publishes its sid here.
SESSION_EVENTS_CHANNEL: Final = "authgate:session-events"

#: Fields of the session hash. `roles` is space-separated; `scope` is space-separated
#: (RFC 6749 §3.3).
SESSION_FIELD_SUB: Final = "sub"
SESSION_FIELD_ROLES: Final = "roles"
SESSION_FIELD_SCOPE: Final = "scope"
SESSION_FIELD_EMAIL: Final = "email"
SESSION_FIELD_NAME: Final = "name"
#: Who the session is of: `user` (a person; the default when absent) or `client` (a
#: service account signed in with its own credential, RFC 6749 §4.4).
SESSION_FIELD_KIND: Final = "kind"
#: The client the session was made for: a service account's id, or the command-line tool
#: a person signed in through (RFC 8628); absent for a browser session.
SESSION_FIELD_CLIENT: Final = "client"
KIND_USER: Final = "user"
KIND_CLIENT: Final = "client"
KINDS: Final = frozenset({KIND_USER, KIND_CLIENT})


def session_key(sid: str) -> str:
    """The Redis key of the session `sid`: `authgate:{<shard of sid>}:session:<sid>`. A
    session is alive iff this hash exists; its TTL is the session's remaining lifetime."""
    return "authgate:{" + shard_of(sid) + "}:session:" + sid


# --- Identity headers (verifier → nginx → upstream) ---

HEADER_USER: Final = "X-Auth-User"
HEADER_EMAIL: Final = "X-Auth-Email"
HEADER_NAME: Final = "X-Auth-Name"
HEADER_ROLES: Final = "X-Auth-Roles"
HEADER_SCOPES: Final = "X-Auth-Scopes"
HEADER_SESSION: Final = "X-Auth-Session"
HEADER_CLIENT: Final = "X-Auth-Client"
#: `user` or `client`, always sent: an upstream tells a person from a service account by
#: it (X-Auth-User is not sent for a client).
HEADER_KIND: Final = "X-Auth-Kind"

#: Session field each identity header is copied from (X-Auth-Session carries the sid).
IDENTITY_HEADERS: Final = (
    (HEADER_USER, SESSION_FIELD_SUB),
    (HEADER_EMAIL, SESSION_FIELD_EMAIL),
    (HEADER_NAME, SESSION_FIELD_NAME),
    (HEADER_ROLES, SESSION_FIELD_ROLES),
    (HEADER_SCOPES, SESSION_FIELD_SCOPE),
    (HEADER_CLIENT, SESSION_FIELD_CLIENT),
)
