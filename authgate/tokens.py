"""Access-token verification (RFC 9068 profile plus `sid`), with an in-process cache: the
one verification path, used by the verifier and by the issuer for its own tokens.

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
from .jose import MAX_KID_LENGTH, Key

log = logging.getLogger("authgate.tokens")

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
            # PyJWT checks the signature, `iss`, `aud` and that every claim is present; the
            # times are checked below against the injected clock (joserfc's `now`), so the
            # tests set the time instead of waiting for it.
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": False,
                         "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )  # fmt: skip
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"token rejected: {type(exc).__name__}") from exc
        self._check_times(payload)
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

    def _check_times(self, payload: dict[str, object]) -> None:
        """RFC 7519 §4.1.4-6 within the leeway: not expired, not before `nbf`, not issued
        in the future. Each must be a number (a bool is not)."""
        now, leeway = self._clock(), self._leeway
        times = {}
        for claim in ("exp", "iat", "nbf"):
            value = payload.get(claim)
            if claim not in payload:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"token rejected: {claim} is not a number")
            times[claim] = float(value)
        if times["exp"] <= now - leeway:
            raise InvalidToken("token expired")
        if times["iat"] > now + leeway:
            raise InvalidToken("token rejected: ImmatureSignatureError")
        if "nbf" in times and times["nbf"] > now + leeway:
            raise InvalidToken("token rejected: ImmatureSignatureError")

    def cache_len(self) -> int:
        return len(self.cache)
