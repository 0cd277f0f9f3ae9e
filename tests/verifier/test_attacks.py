"""Forged, malformed and misused tokens: every one is a 401, never a 5xx, never logged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from issuer.signing import SigningKey

from ..harness import Sessions, VerifierProcess, mint


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"
    )


@pytest.fixture(scope="module")
def corpus(sessions: Sessions, signing_key: SigningKey) -> dict[str, str]:
    """Name → token. Each targets one check; all refer to a live session."""
    sid = sessions.create("victim", roles=["admin"])
    good = mint(signing_key, sid, "victim")
    header = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))
    payload = json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))
    now = int(time.time())
    public_jwk = json.dumps(signing_key.public_jwk()).encode()
    hs_header = {**header, "alg": "HS256"}
    hs_signing_input = f"{b64(json.dumps(hs_header).encode())}.{b64(json.dumps(payload).encode())}"
    other_key = SigningKey.generate("EdDSA", kid=signing_key.kid)  # same kid, not the issuer's
    es_key = SigningKey.generate("ES256", kid=signing_key.kid)
    return {
        "alg none": raw_jwt({**header, "alg": "none"}, payload),
        "alg None": raw_jwt({**header, "alg": "None"}, payload),
        "HS256 keyed with the public key": hs_signing_input
        + "."
        + b64(hmac.new(public_jwk, hs_signing_input.encode(), hashlib.sha256).digest()),
        "signed by another key under the issuer's kid": mint(other_key, sid, "victim"),
        "ES256 under an EdDSA key's kid": mint(es_key, sid, "victim"),
        "signature stripped": good.rsplit(".", 1)[0] + ".",
        # Only the signature can catch this one: sub and sid still match the session.
        "payload swapped": good.split(".")[0]
        + "."
        + b64(json.dumps({**payload, "exp": now + 86400 * 365, "scope": "api:write"}).encode())
        + "."
        + good.split(".")[2],
        "wrong iss": mint(signing_key, sid, "victim", iss="https://evil.test"),
        "wrong aud": mint(signing_key, sid, "victim", aud="someone-else"),
        "aud list without ours": mint(signing_key, sid, "victim", aud=["a", "b"]),
        "expired beyond leeway": mint(signing_key, sid, "victim", exp=now - 120, iat=now - 720),
        "nbf in the future": mint(signing_key, sid, "victim", nbf=now + 300),
        "iat in the future": mint(signing_key, sid, "victim", iat=now + 300),
        "missing sid": mint(signing_key, sid, "victim", sid=None),
        "missing exp": mint(signing_key, sid, "victim", exp=None),
        "missing iss": mint(signing_key, sid, "victim", iss=None),
        "sid not a string": mint(signing_key, sid, "victim", sid=12345),
        "sid with a glob": mint(signing_key, sid, "victim", sid="*"),
        "session that does not exist": mint(signing_key, "no-such-session-0000", "victim"),
        "sub differs from the session's": mint(signing_key, sid, "admin"),
        "typ JWT (an ID token, not an access token)": signing_key.sign(payload, typ="JWT"),
        "kid path traversal": raw_jwt(
            {**header, "kid": "../../../../etc/passwd"}, payload, b"x" * 64
        ),
        "kid absent": raw_jwt({k: v for k, v in header.items() if k != "kid"}, payload, b"x" * 64),
        "kid not a string": raw_jwt({**header, "kid": {"$ne": None}}, payload, b"x" * 64),
        "64 KB token": good + "A" * 65536,
        "broken base64": "eyJ!!!.@@@.###",
        "non-JSON header": b64(b"not json at all") + "." + good.split(".", 1)[1],
        "header is a JSON list": b64(b"[1,2,3]") + "." + good.split(".", 1)[1],
        "two segments": "abc.def",
        "empty segments": "..",
        "crit header": raw_jwt({**header, "crit": ["exp"]}, payload, b"x" * 64),
    }


def test_the_untouched_token_is_accepted(
    verifier: VerifierProcess, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    # Without this, every refusal below could come from a broken verifier.
    token = mint(signing_key, sessions.create("victim"), "victim")
    assert (
        client.get(
            verifier.url + "/verify", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 204
    )


def test_every_attack_is_refused_by_the_verifier(
    verifier: VerifierProcess, client: httpx.Client, corpus: dict[str, str]
) -> None:
    results = {
        name: client.get(verifier.url + "/verify", headers={"Authorization": f"Bearer {token}"})
        for name, token in corpus.items()
    }
    wrong = {name: r.status_code for name, r in results.items() if r.status_code != 401}
    assert wrong == {}
    for response in results.values():
        assert response.headers["www-authenticate"].startswith('Bearer realm="authgate", error=')


def test_every_attack_in_the_cookie_is_refused(
    verifier: VerifierProcess, client: httpx.Client, corpus: dict[str, str]
) -> None:
    wrong = {}
    for name, token in corpus.items():
        response = client.get(
            verifier.url + "/verify", headers={"Cookie": f"authgate_session={token}"}
        )
        if response.status_code != 401:
            wrong[name] = response.status_code
    assert wrong == {}


def test_every_attack_through_nginx_is_a_4xx(
    nginx: str, client: httpx.Client, corpus: dict[str, str]
) -> None:
    wrong = {}
    for name, token in corpus.items():
        status = client.get(
            nginx + "/api/items", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        # nginx itself refuses headers over its buffer size (400/494) before asking.
        expected = {400, 494} if name == "64 KB token" else {401}
        if status not in expected:
            wrong[name] = status
    assert wrong == {}


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer a b",
        "bearer",
        "Token abc",
        "Bearer\ttok",
        "Bearer,tok",
    ],
)
def test_malformed_authorization_is_invalid_request(
    verifier: VerifierProcess, client: httpx.Client, authorization: str
) -> None:
    response = client.get(verifier.url + "/verify", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_duplicate_authorization_headers_are_refused(
    verifier: VerifierProcess, client: httpx.Client, sessions: Sessions, signing_key: SigningKey
) -> None:
    token = mint(signing_key, sessions.create("victim"), "victim")
    response = client.get(
        verifier.url + "/verify",
        headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")],
    )
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_no_token_material_reaches_the_log(
    verifier: VerifierProcess, client: httpx.Client, corpus: dict[str, str]
) -> None:
    for token in corpus.values():
        client.get(verifier.url + "/verify", headers={"Authorization": f"Bearer {token}"})
    log = verifier.log()
    assert "auth failure" in log  # the decisions are logged ...
    for name, token in corpus.items():
        for part in token.split("."):
            if len(part) >= 16:  # ... but no segment of any token is
                assert part not in log, name
