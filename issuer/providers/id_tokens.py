"""Providers' OIDC ID tokens: their keys, and the full check (OIDC Core §3.1.3.7)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt

from authgate.errors import Unavailable
from authgate.jwks import KeySet

from .interface import ProviderError

#: Signature algorithms accepted on providers' ID tokens. RS256 is what Google and
#: Kakao sign with; HMAC (keyed with our client secret) is never accepted.
ID_TOKEN_ALGORITHMS = ("RS256", "ES256", "EdDSA", "PS256")
#: ID tokens issued longer ago than this are refused, whatever their `exp`.
ID_TOKEN_MAX_AGE = 600


def provider_keys(jwks_url: str) -> KeySet:
    """A provider's JWKS, fetched on first use and again on an unknown kid (bounded).
    It holds an HTTP client open: whoever makes it closes it (`KeySet.close`)."""
    return KeySet(url=jwks_url, file=None, algorithms=frozenset(ID_TOKEN_ALGORITHMS))


async def validate_id_token(
    id_token: str,
    *,
    keys: KeySet,
    issuer: str,
    client_id: str,
    nonce: str,
    now: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """An OIDC ID token, fully checked; its claims."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.InvalidTokenError as exc:
        raise ProviderError("invalid_id_token", "malformed ID token") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ID_TOKEN_ALGORITHMS:
        raise ProviderError("invalid_id_token", f"algorithm {alg!r} not accepted")
    if not isinstance(kid, str) or not kid:
        raise ProviderError("invalid_id_token", "ID token without kid")
    try:
        key = await keys.lookup(kid)
    except Unavailable as exc:
        raise ProviderError("provider_unavailable", "provider keys unavailable") from exc
    if key is None or key.algorithm != alg:
        raise ProviderError("invalid_id_token", "ID token signed by an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key.key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            leeway=60,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.InvalidTokenError as exc:
        raise ProviderError("invalid_id_token", f"ID token rejected: {type(exc).__name__}") from exc
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # §3.1.3.7 items 4-5: several audiences need azp, and an azp must be us.
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise ProviderError("invalid_id_token", "ID token azp is not this client")
    if claims.get("nonce") != nonce:
        raise ProviderError("invalid_id_token", "ID token nonce does not match")
    if not isinstance(claims["iat"], int | float) or claims["iat"] < now() - ID_TOKEN_MAX_AGE:
        raise ProviderError("invalid_id_token", "ID token issued too long ago")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise ProviderError("invalid_id_token", "ID token sub is not a string")
    return claims
