"""JWS signature checks (RFC 7518 §3) with `cryptography`'s key objects, as PyJWT's
algorithms make them, without the token handling around them.

`verify` answers False for a bad signature, a signature of the wrong size and a key
that is not of the algorithm's kind: whatever the token says, the key's type decides
what is checked. What each costs on this machine: bench/signatures.py.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512,
}  # fmt: skip
#: RFC 7518 §3.4: ES256 on P-256, ES384 on P-384, ES512 on P-521; r and s of this size.
_CURVES = {"ES256": ("secp256r1", 32), "ES384": ("secp384r1", 48), "ES512": ("secp521r1", 66)}


def verify(alg: str, key: Any, signature: bytes, data: bytes) -> bool:
    try:
        if alg == "EdDSA":
            if not isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
                return False
            key.verify(signature, data)
            return True
        family, bits = alg[:2], alg[2:]
        if family == "ES":
            curve, size = _CURVES[alg]
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve:
                return False
            if len(signature) != 2 * size:  # RFC 7518 §3.4: R || S, each `size` bytes
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(_HASHES[bits]()))
            return True
        if family in ("RS", "PS") and isinstance(key, rsa.RSAPublicKey):
            digest = _HASHES[bits]()
            scheme: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if family == "RS"
                else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            )
            key.verify(signature, data, scheme, digest)
            return True
    except (InvalidSignature, KeyError):
        return False
    return False
