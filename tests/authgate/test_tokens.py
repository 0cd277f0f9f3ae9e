"""The one verification path (authgate/tokens.py) with its clock injected: time is set,
never waited for."""

from __future__ import annotations

import asyncio

import pytest

from authgate.errors import InvalidToken
from authgate.jose import Key, parse_jwks
from authgate.tokens import Claims, TokenVerifier
from issuer.signing import SigningKey, access_token_claims

ISSUER, AUDIENCE, T0 = "https://issuer.test", "api", 1_900_000_000.0


class Keys:
    def __init__(self, key: SigningKey) -> None:
        self.keys = parse_jwks({"keys": [key.public_jwk()]}, frozenset({key.algorithm}))

    async def lookup(self, kid: str) -> Key | None:
        return self.keys.get(kid)


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate("EdDSA", kid="k1")


def _verify(key: SigningKey, token: str, now: float, leeway: float = 30) -> Claims:
    verifier = TokenVerifier(Keys(key), issuer=ISSUER, audience=AUDIENCE,
                             algorithms=frozenset({"EdDSA"}), leeway=leeway, cache_size=0,
                             clock=lambda: now)  # fmt: skip
    return asyncio.run(verifier.verify(token.encode()))


def _token(key: SigningKey, **overrides: object) -> str:
    claims = access_token_claims(issuer=ISSUER, audience=AUDIENCE, sub="u", sid="s1",
                                 client_id="c", lifetime=600, now=T0)  # fmt: skip
    claims.update(overrides)
    return key.sign(claims)


def test_expiry_is_judged_by_the_injected_clock(key: SigningKey) -> None:
    token = _token(key)
    assert _verify(key, token, T0 + 600 + 29).sub == "u"  # within the leeway
    with pytest.raises(InvalidToken, match="expired"):
        _verify(key, token, T0 + 600 + 30)
    with pytest.raises(InvalidToken, match="expired"):
        _verify(key, token, T0 + 601, leeway=0)


def test_a_token_from_the_future_is_refused(key: SigningKey) -> None:
    token = _token(key)
    assert _verify(key, token, T0 - 30).sub == "u"
    with pytest.raises(InvalidToken, match="Immature"):
        _verify(key, token, T0 - 31)
    with pytest.raises(InvalidToken, match="Immature"):
        _verify(key, _token(key, nbf=T0 + 100), T0 + 60)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["1900000600", True, None, [1]])
def test_times_must_be_numbers(key: SigningKey, claim: str, value: object) -> None:
    with pytest.raises(InvalidToken):
        _verify(key, _token(key, **{claim: value}), T0)
