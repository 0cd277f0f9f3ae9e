"""Signing keys and access tokens as the contract defines them (the issuer's side).

The issuer signs with these; the demo, the tests and the benchmarks mint tokens with the
same code, so what they exercise is what the issuer will send.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from authgate.contract import ACCESS_TOKEN_TYP


def _es256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


_PRIVATE_KEYS: dict[str, Callable[[], Any]] = {
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
    "ES256": _es256,
}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Any

    @classmethod
    def generate(cls, algorithm: str = "EdDSA", kid: str | None = None) -> SigningKey:
        if algorithm not in _PRIVATE_KEYS:
            raise ValueError(
                f"cannot generate {algorithm} keys; use one of {sorted(_PRIVATE_KEYS)}"
            )
        return cls(kid or secrets.token_urlsafe(12), algorithm, _PRIVATE_KEYS[algorithm]())

    @classmethod
    def from_pem(cls, pem: bytes, kid: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(kid, "EdDSA", key)
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            return cls(kid, "ES256", key)
        raise ValueError("only Ed25519 and P-256 private keys are supported")

    def to_pem(self) -> bytes:
        return bytes(
            self.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def public_jwk(self) -> dict[str, Any]:
        codec = OKPAlgorithm if self.algorithm == "EdDSA" else ECAlgorithm
        jwk: dict[str, Any] = codec.to_jwk(self.private_key.public_key(), as_dict=True)
        jwk.update(kid=self.kid, alg=self.algorithm, use="sig")
        return jwk

    def sign(self, claims: dict[str, Any], typ: str = ACCESS_TOKEN_TYP) -> str:
        return jwt.encode(
            claims,
            self.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": typ},
        )


def jwks(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """The public JWKS document for `keys`."""
    return {"keys": [key.public_jwk() for key in keys]}


def access_token_claims(
    *,
    issuer: str,
    audience: str,
    sub: str,
    sid: str,
    client_id: str,
    lifetime: float = 600,
    roles: Iterable[str] = (),
    scope: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """RFC 9068 §2.2 claims plus `sid`, `roles` and `scope` (DESIGN.md, the contract)."""
    issued = int(time.time() if now is None else now)
    return {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "exp": issued + int(lifetime),
        "iat": issued,
        "jti": uuid.uuid4().hex,
        "client_id": client_id,
        "sid": sid,
        "roles": sorted(roles),
        "scope": scope,
    }


def new_session_id() -> str:
    """A session id: 256 random bits, URL-safe (matches contract.SID_PATTERN)."""
    return secrets.token_urlsafe(32)
