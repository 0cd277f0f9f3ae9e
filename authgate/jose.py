"""JOSE keys as values: a public key with its `kid` and algorithm, and the usable keys of
a JWKS document (RFC 7517). No I/O here: fetching is `authgate.jwks`, signing the issuer's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import jwt

from authgate.contract import ASYMMETRIC_ALGORITHMS

log = logging.getLogger("authgate.jose")

MAX_KID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Key:
    kid: str
    algorithm: str
    key: Any  # a cryptography public key object


class KeyFetchError(Exception):
    """The JWKS could not be read or held no usable key."""


def parse_jwks(document: Any, allowed: frozenset[str]) -> dict[str, Key]:
    """Usable signing keys of a JWKS document: `use` sig (or absent), an allowed algorithm."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyFetchError("not a JWKS document (no `keys` list)")
    keys: dict[str, Key] = {}
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, dict):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
            continue
        try:
            parsed = jwt.PyJWK(jwk)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            log.warning("jwks: key %d (kid %r) skipped: %s", index, kid[:64], exc)
            continue
        algorithm = parsed.algorithm_name
        if algorithm not in allowed or algorithm not in ASYMMETRIC_ALGORITHMS:
            continue
        keys[kid] = Key(kid=kid, algorithm=algorithm, key=parsed.key)
    if not keys:
        raise KeyFetchError("no usable signing key for the allowed algorithms")
    return keys
