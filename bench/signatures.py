"""What checking a new token costs, per algorithm: the signature alone, authgate's
TokenVerifier.verify, and PyJWT's decode as the verifier used it before (header read,
then decoded again with the claims), in one run.

    .venv/bin/python -m bench.signatures [--tokens 2000] [--rounds 3]

EdDSA (Ed25519) and ES256 are what the issuer signs with; RS256 (2048-bit) is shown for
comparison: its check is the cheapest of the three, its signing the dearest.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from statistics import median
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from authgate import signatures
from authgate.jose import Key
from authgate.tokens import TokenVerifier, _b64decode
from issuer.signing import SigningKey, access_token_claims, new_session_id

ISSUER, AUDIENCE = "https://issuer.bench.test", "bench"


class OneKey:
    def __init__(self, key: Key) -> None:
        self.key = key

    async def lookup(self, kid: str) -> Key | None:
        return self.key


def tokens(alg: str, count: int) -> tuple[list[bytes], Any]:
    sid = new_session_id()

    def claims() -> dict[str, Any]:
        return access_token_claims(
            issuer=ISSUER, audience=AUDIENCE, sub="bench", sid=sid, client_id="bench", lifetime=3600
        )

    if alg == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        made = [
            jwt.encode(claims(), private, algorithm=alg, headers={"kid": "k", "typ": "at+jwt"})
            for _ in range(count)
        ]
    else:
        signing = SigningKey.generate(alg, kid="k")
        private = signing.private_key
        made = [signing.sign(claims()) for _ in range(count)]
    return [t.encode() for t in made], private.public_key()


def per_token(work: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) / count * 1e6


def measure(alg: str, count: int) -> dict[str, float]:
    made, public = tokens(alg, count)
    verifier = TokenVerifier(
        OneKey(Key("k", alg, public)),
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=frozenset({alg}),
        leeway=30,
        cache_size=0,
    )
    split = [t.rsplit(b".", 1) for t in made]

    def signature_alone() -> None:
        for signing_input, signature in split:
            assert signatures.verify(alg, public, _b64decode(signature), signing_input)

    def authgate() -> None:
        async def all_of_them() -> None:
            for token in made:
                await verifier.verify(token)

        asyncio.run(all_of_them())

    def pyjwt() -> None:
        for token in made:
            jwt.get_unverified_header(token)
            jwt.decode(
                token,
                public,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti", "sid"]},
            )

    return {
        "signature": per_token(signature_alone, count),
        "authgate": per_token(authgate, count),
        "pyjwt": per_token(pyjwt, count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per algorithm")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median reported)")
    args = parser.parse_args()
    print(f"per token, microseconds (median of {args.rounds} rounds of {args.tokens} tokens)\n")
    print(f"{'alg':<8}{'signature':>11}{'authgate':>10}{'PyJWT':>9}{'PyJWT/authgate':>16}")
    for alg in ("EdDSA", "ES256", "RS256"):
        runs = [measure(alg, args.tokens) for _ in range(args.rounds)]
        sig, ours, theirs = (median(r[k] for r in runs) for k in ("signature", "authgate", "pyjwt"))
        ratio = median(r["pyjwt"] / r["authgate"] for r in runs)
        print(f"{alg:<8}{sig:>11.1f}{ours:>10.1f}{theirs:>9.1f}{ratio:>16.2f}")


if __name__ == "__main__":
    main()
