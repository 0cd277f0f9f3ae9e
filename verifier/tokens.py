"""Access-token verification (RFC 9068 profile plus `sid`), with an in-process cache.

The algorithm is taken from the verifier's allow-list and the key's own `alg`, never from
the token alone: a token whose `alg` is not allowed, or differs from its key's, is refused
before any signature check. `iss`, `aud`, `exp`, `nbf`, `iat` and `typ` are always checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import jwt

from authgate.contract import ACCESS_TOKEN_TYPS, REQUIRED_CLAIMS, SID_PATTERN

from .errors import InvalidToken
from .jwks import MAX_KID_LENGTH, Key

log = logging.getLogger("authgate.verifier")

#: Longer credentials are refused unread; ours are well under 2 KB.
MAX_TOKEN_LENGTH = 8192


class KeySource(Protocol):
    """Where verification keys come from: the verifier's KeySet, or the issuer's own keys."""

    async def lookup(self, kid: str) -> Key | None: ...


@dataclass(frozen=True, slots=True)
class Claims:
    """What the verifier keeps of a verified token."""

    sub: str
    sid: str
    exp: float
    client_id: str = ""


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: frozenset[str],
        leeway: float,
        cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = algorithms
        self._leeway = leeway
        self.cache_size = cache_size
        self._clock = clock
        #: Verified tokens by their bytes. Read directly on the hot path; written only here.
        self.cache: dict[bytes, Claims] = {}

    def cached(self, token: bytes, now: float) -> Claims | None:
        """The claims of a token verified before and not yet expired at `now` (the hot path)."""
        claims = self.cache.get(token)
        if claims is not None and claims.exp <= now:
            del self.cache[token]
            return None
        return claims

    async def verify(self, token: bytes) -> Claims:
        """Verify `token` fully; raises InvalidToken, or Unavailable when keys can't be had."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise InvalidToken("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPS:
            raise InvalidToken("not an access token (typ)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise InvalidToken("missing or malformed kid")
        key = await self._keys.lookup(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        if key.algorithm != alg:
            raise InvalidToken("algorithm does not match the key")
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"token rejected: {type(exc).__name__}") from exc
        sub, sid, exp = payload["sub"], payload["sid"], payload["exp"]
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("sub is not a string")
        if not isinstance(sid, str) or not SID_PATTERN.fullmatch(sid):
            raise InvalidToken("sid is missing or malformed")
        client_id = payload["client_id"] if isinstance(payload["client_id"], str) else ""
        claims = Claims(sub=sub, sid=sid, exp=float(exp), client_id=client_id)
        if self.cache_size:
            if len(self.cache) >= self.cache_size:
                # Evict the oldest insertion (dicts keep order): cheap, bounded, and a
                # token that is still in use is simply verified and cached again.
                del self.cache[next(iter(self.cache))]
            self.cache[token] = claims
        return claims

    def cache_len(self) -> int:
        return len(self.cache)
