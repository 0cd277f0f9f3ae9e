"""Access-token verification (RFC 9068 profile plus `sid`), with an in-process cache: the
one verification path, used by the verifier and by the issuer for its own tokens.

The algorithm is taken from the verifier's allow-list and the key's own `alg`, never from
the token alone: a token whose `alg` is not allowed, or differs from its key's, is refused
before any signature check. `iss`, `aud`, `exp`, `nbf`, `iat` and `typ` are always checked.

The token is read here, once, rather than by PyJWT (which read the header twice and cost
several times the signature check itself, bin/bench's cold path); the signature is
checked by `cryptography` (authgate/signatures.py), the same calls PyJWT makes.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from authgate.contract import ACCESS_TOKEN_TYPS, REQUIRED_CLAIMS, SID_PATTERN

from . import signatures
from .bounded import BoundedCache
from .errors import InvalidToken
from .jose import MAX_KID_LENGTH, Key

log = logging.getLogger("authgate.tokens")

#: Longer credentials are refused unread; ours are well under 2 KB.
MAX_TOKEN_LENGTH = 8192
#: What each verifier cache may hold in bytes unless told (AUTHGATE_TOKEN_CACHE_BYTES,
#: AUTHGATE_SESSION_CACHE_BYTES): above 100 000 usual entries, so the entry bound decides
#: for usual records and this one for unusually large ones.
DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
#: A cached token's memory beyond its variable parts (the key's bytes object, Claims,
#: three str objects, a float, the dict slot), from bench/memory.py on CPython 3.11.
TOKEN_ENTRY_BYTES = 340


def weigh(token: bytes, claims: Claims) -> int:
    """What a cached token costs in memory, near enough (bench/memory.py checks it)."""
    return (
        TOKEN_ENTRY_BYTES + len(token) + len(claims.sub) + len(claims.sid) + len(claims.client_id)
    )


#: Distinct header segments whose checked reading is kept (cleared when full).
HEADER_CACHE_SIZE = 64
#: A compact JWS (RFC 7515 §7.1): three base64url segments, nothing else.
_SEGMENTS = re.compile(rb"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _b64decode(segment: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2), strictly: a length that no encoding
    gives is refused (binascii.Error is a ValueError)."""
    padded = segment.translate(_TO_STANDARD) + b"=" * (-len(segment) % 4)
    return binascii.a2b_base64(padded, strict_mode=True)


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
        cache_bytes: int = DEFAULT_CACHE_BYTES,
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
        self.cache: BoundedCache[bytes, Claims] = BoundedCache(cache_size, cache_bytes, weigh)
        #: Checked readings of header segments (alg, kid): one per signing key in practice.
        self._headers: dict[bytes, tuple[str, str]] = {}

    def cached(self, token: bytes, now: float) -> Claims | None:
        """The claims of a token verified before and not yet expired at `now` (the hot path)."""
        claims = self.cache.get(token)
        if claims is not None and claims.exp <= now:
            self.cache.drop(token)
            return None
        return claims

    async def verify(self, token: bytes) -> Claims:
        """Verify `token` fully; raises InvalidToken, or Unavailable when keys can't be had.

        Each part is read once: the header segment (the same for every token of a key,
        so its checked reading is kept), the signature checked with the key's own
        `cryptography` object, the payload decoded after the signature holds.
        """
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        parts = _SEGMENTS.fullmatch(token)
        if parts is None:
            raise InvalidToken("malformed token")
        header_segment, payload_segment, signature_segment = parts.groups()
        read = self._headers.get(header_segment)
        if read is None:
            read = self._read_header(header_segment)
        alg, kid = read
        key = await self._keys.lookup(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        if key.algorithm != alg:
            raise InvalidToken("algorithm does not match the key")
        try:
            signature = _b64decode(signature_segment)
        except ValueError as exc:
            raise InvalidToken("malformed token") from exc
        if not signatures.verify(alg, key.key, signature, token[: parts.end(2)]):
            raise InvalidToken("token rejected: InvalidSignatureError")
        try:
            payload = json.loads(_b64decode(payload_segment))
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, JSONDecodeError
            raise InvalidToken("token rejected: DecodeError") from exc
        if not isinstance(payload, dict):
            raise InvalidToken("token rejected: DecodeError")
        self._check_claims(payload)
        self._check_times(payload)
        sub, sid, exp = payload["sub"], payload["sid"], payload["exp"]
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("sub is not a string")
        if not isinstance(sid, str) or not SID_PATTERN.fullmatch(sid):
            raise InvalidToken("sid is missing or malformed")
        client_id = payload["client_id"] if isinstance(payload["client_id"], str) else ""
        claims = Claims(sub=sub, sid=sid, exp=float(exp), client_id=client_id)
        # Only a verified token is cached: a flood of invalid ones pushes nothing out.
        self.cache.put(token, claims)
        return claims

    def _read_header(self, segment: bytes) -> tuple[str, str]:
        """The JOSE header's `alg` and `kid`, checked: an allowed algorithm, an access
        token's `typ`, a kid of sane length, no `crit` (RFC 7515 §4.1.11: we understand
        no extension, so a token that needs one is refused)."""
        try:
            header = json.loads(_b64decode(segment))
        except ValueError as exc:
            raise InvalidToken("malformed token") from exc
        if not isinstance(header, dict):
            raise InvalidToken("malformed token")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPS:
            raise InvalidToken("not an access token (typ)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise InvalidToken("missing or malformed kid")
        if "crit" in header or "b64" in header:
            raise InvalidToken("token rejected: unsupported critical header")
        if len(self._headers) >= HEADER_CACHE_SIZE:
            self._headers.clear()
        self._headers[segment] = (alg, kid)
        return alg, kid

    def _check_claims(self, payload: dict[str, Any]) -> None:
        """Every required claim present (a null is absent), `iss` ours, our audience
        among `aud` (a string or a list of strings: RFC 7519 §4.1.3)."""
        for claim in REQUIRED_CLAIMS:
            if payload.get(claim) is None:
                raise InvalidToken("token rejected: MissingRequiredClaimError")
        if payload["iss"] != self._issuer:
            raise InvalidToken("token rejected: InvalidIssuerError")
        aud = payload["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if (
            not isinstance(audiences, list)
            or not all(isinstance(a, str) for a in audiences)
            or self._audience not in audiences
        ):
            raise InvalidToken("token rejected: InvalidAudienceError")

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
