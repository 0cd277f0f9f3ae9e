"""Service accounts (issue 18): made with the CLI and the admin API, signing in with the
client credentials grant (RFC 6749 §4.4) by each authentication method, and the attacks:
wrong secrets, replayed or forged assertions, suspended accounts, rotated-away secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import statistics
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import jwt

from authgate.contract import session_key
from issuer.signing import SigningKey

from ..harness import JwksServer
from ..identity import IssuerProcess
from ..social import KAKAO_USER, Social, browser, login

GRANT = {"grant_type": "client_credentials"}


def cli(social: Social, *args: str) -> dict[str, Any]:
    done = social.issuer.cli("clients", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def service(social: Social, *extra: str) -> tuple[str, str]:
    """A new service account (scopes reports:read, reports:write; role reporter): its id
    and its first secret."""
    made = cli(social, "create", f"job {secrets.token_hex(3)}", "--role", "reporter",
               "--scope", "reports:read", "--scope", "reports:write", *extra)  # fmt: skip
    return made["client_id"], made["client_secret"]


def token(social: Social, http: httpx.Client | None = None, **kwargs: Any) -> httpx.Response:
    with closing(browser()) as fresh:  # a new address: the per-address limit stays out of it
        return (http or fresh).post(f"{social.issuer.url}/token", **kwargs)


def claims_of(access_token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return found


def test_a_secret_works_in_basic_and_in_the_form_and_the_token_is_bound_to_a_session(
    social: Social,
) -> None:
    cid, secret = service(social)
    for answer in (
        token(social, data=GRANT, auth=(cid, secret)),
        token(social, data={**GRANT, "client_id": cid, "client_secret": secret}),
    ):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
        assert body["scope"] == "reports:read reports:write"
        assert "refresh_token" not in body  # RFC 6749 §4.4.3
        assert answer.headers["cache-control"] == "no-store"
        claims = claims_of(body["access_token"])
        assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
        assert claims["sub"] == claims["client_id"] == cid
        assert claims["roles"] == ["reporter"]
        record = social.redis.hgetall(session_key(claims["sid"]))
        assert record["kind"] == "client" and record["client"] == cid and record["sub"] == cid
        assert record["scope"] == "reports:read reports:write"
    assert secret not in social.issuer.log()


def test_the_scope_asked_for_is_narrowed_and_more_is_refused(social: Social) -> None:
    cid, secret = service(social)
    narrow = token(social, data={**GRANT, "scope": "reports:read"}, auth=(cid, secret))
    assert narrow.json()["scope"] == "reports:read"
    sid = claims_of(narrow.json()["access_token"])["sid"]
    assert social.redis.hget(session_key(sid), "scope") == "reports:read"
    wider = token(social, data={**GRANT, "scope": "reports:read admin"}, auth=(cid, secret))
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_wrong_secrets_and_unknown_clients_get_the_same_invalid_client(social: Social) -> None:
    cid, secret = service(social)
    credential = secret.split(".")[0]
    answers = {
        "wrong secret": token(social, data=GRANT, auth=(cid, credential + ".wrong")),
        "other's secret": token(social, data=GRANT, auth=(service(social)[0], secret)),
        "unknown client": token(social, data=GRANT, auth=("agc_AAAAAAAAAAAAAAAA", secret)),
        "malformed id": token(social, data=GRANT, auth=("x' OR 1=1", secret)),
        "no secret": token(social, data={**GRANT, "client_id": cid}),
    }
    for what, answer in answers.items():
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json() == {
            "error": "invalid_client",
            "error_description": "client authentication failed",
        }, what
    assert answers["wrong secret"].headers["www-authenticate"].startswith("Basic ")
    two = token(social, data={**GRANT, "client_id": cid, "client_secret": secret},
                auth=(cid, secret))  # fmt: skip
    assert two.status_code == 400 and two.json()["error"] == "invalid_request"
    log = social.issuer.log()
    assert "client auth failure: client=" + cid in log
    assert credential + ".wrong" not in log and secret not in log


def test_a_wrong_secret_costs_what_an_unknown_client_costs(social: Social) -> None:
    """One argon2id check whatever is wrong: timing tells a known client from an unknown
    one no better than chance. Interleaved, so load on the machine hits both alike."""
    cid, secret = service(social)
    cases = {"wrong": (cid, secret.split(".")[0] + ".x" * 20),
             "unknown": ("agc_" + "B" * 16, secret)}  # fmt: skip
    took: dict[str, list[float]] = {"wrong": [], "unknown": []}
    with closing(browser()) as http:
        for _ in range(9):
            for name, auth in cases.items():
                http.headers["X-Forwarded-For"] = (
                    f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
                )
                started = time.perf_counter()
                assert (
                    http.post(f"{social.issuer.url}/token", data=GRANT, auth=auth).status_code
                    == 401
                )
                took[name].append(time.perf_counter() - started)
    wrong, unknown = statistics.median(took["wrong"]), statistics.median(took["unknown"])
    assert 0.6 < wrong / unknown < 1.6, took


def test_suspension_deletion_and_rotation_end_the_tokens_they_concern(
    social: Social, admin: httpx.Client
) -> None:
    """Through the admin API (the CLI's same verbs are driven in test_events.py)."""
    cid, first = service(social)
    base = f"{social.issuer.url}/admin/clients/{cid}"
    old = claims_of(token(social, data=GRANT, auth=(cid, first)).json()["access_token"])["sid"]
    second = admin.post(f"{base}/credentials", json={"type": "secret"}).json()["client_secret"]
    new = claims_of(token(social, data=GRANT, auth=(cid, second)).json()["access_token"])["sid"]
    assert social.redis.exists(session_key(old), session_key(new)) == 2
    three = social.issuer.cli("clients", "add-secret", cid)  # a refusal is exit status 1
    assert three.returncode == 1 and "holds 2 credentials" in three.stderr
    assert admin.post(f"{base}/credentials", json={"type": "secret"}).status_code == 409
    # Rotation: the first secret goes, and with it only the tokens it got.
    credential = first.removeprefix("ags_").split(".")[0]
    assert admin.delete(f"{base}/credentials/{credential}").status_code == 204
    assert not social.redis.exists(session_key(old))
    assert social.redis.exists(session_key(new))
    assert token(social, data=GRANT, auth=(cid, first)).status_code == 401
    # Suspension ends every token and refuses new ones; reactivation lets it back in.
    assert admin.post(f"{base}/suspend").json()["status"] == "suspended"
    assert not social.redis.exists(session_key(new))
    assert token(social, data=GRANT, auth=(cid, second)).status_code == 401
    assert admin.post(f"{base}/reactivate").json()["status"] == "active"
    again = token(social, data=GRANT, auth=(cid, second))
    assert again.status_code == 200
    last = claims_of(again.json()["access_token"])["sid"]
    assert admin.delete(base).status_code == 204
    assert not social.redis.exists(session_key(last))
    assert token(social, data=GRANT, auth=(cid, second)).status_code == 401
    missing = social.issuer.cli("clients", "show", cid)
    assert missing.returncode == 1 and "no such client" in missing.stderr


def _assertion(key: SigningKey, cid: str, audience: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": cid, "sub": cid, "aud": audience, "iat": now, "exp": now + 60,
            "jti": secrets.token_urlsafe(16), **claims}  # fmt: skip
    return key.sign({k: v for k, v in body.items() if v is not None}, typ="JWT")


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    """The algorithm-confusion forgery, made by hand (PyJWT refuses to make it)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    return head + "." + part(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def _with_assertion(social: Social, assertion: str, **extra: str) -> httpx.Response:
    return token(social, data={
        **GRANT, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion, **extra,
    })  # fmt: skip


def test_private_key_jwt_with_a_registered_key_and_its_attacks(
    social: Social, admin: httpx.Client
) -> None:
    key = SigningKey.generate("ES256")
    made = admin.post(f"{social.issuer.url}/admin/clients", json={
        "name": "signer", "roles": ["reporter"], "scopes": ["reports:read"],
        "credential": {"type": "jwk", "jwk": {**key.public_jwk(), "kid": key.kid}},
    })  # fmt: skip
    assert made.status_code == 201, made.text
    cid = made.json()["client_id"]
    assert "client_secret" not in made.json()
    endpoint = f"{social.issuer.url}/token"
    good = _assertion(key, cid, endpoint)
    answer = _with_assertion(social, good)
    assert answer.status_code == 200, answer.text
    assert claims_of(answer.json()["access_token"])["sub"] == cid
    assert _with_assertion(social, _assertion(key, cid, social.issuer.url)).status_code == 200
    attacks = {
        "replayed": good,
        "other audience": _assertion(key, cid, "https://elsewhere.test/token"),
        "expired": _assertion(key, cid, endpoint, exp=int(time.time()) - 120),
        "lives an hour": _assertion(key, cid, endpoint, exp=int(time.time()) + 3600),
        "no jti": _assertion(key, cid, endpoint, jti=None),
        "iss is not the client": _assertion(key, cid, endpoint, iss="agc_" + "C" * 16),
        "another key": _assertion(SigningKey.generate("ES256", kid=key.kid), cid, endpoint),
        "alg none": jwt.encode({"iss": cid, "sub": cid, "aud": endpoint, "jti": "n",
                                "exp": int(time.time()) + 60}, "", algorithm="none"),
        "HS256 keyed with the public key": _hs256(
            {"iss": cid, "sub": cid, "aud": endpoint, "jti": "h", "exp": int(time.time()) + 60},
            json.dumps(key.public_jwk()).encode(),
        ),
        "garbage": "not.a.jwt",
    }  # fmt: skip
    for what, assertion in attacks.items():
        refused = _with_assertion(social, assertion)
        assert refused.status_code == 401, (what, refused.text)
        assert refused.json()["error"] == "invalid_client", what
    mismatch = _with_assertion(social, _assertion(key, cid, endpoint), client_id="agc_" + "D" * 16)
    assert mismatch.status_code == 400
    assert "assertion replayed" in social.issuer.log()


def test_private_key_jwt_with_a_jwks_url(social: Social) -> None:
    key = SigningKey.generate("EdDSA")
    server = JwksServer()
    try:
        server.publish([key])
        made = cli(social, "create", "jwks signer", "--jwks-url", server.jwks_url)
        cid = made["client_id"]
        assert made["credentials"][0]["jwks_url"] == server.jwks_url
        answer = _with_assertion(social, _assertion(key, cid, f"{social.issuer.url}/token"))
        assert answer.status_code == 200, answer.text
    finally:
        server.close()
    refused = social.issuer.cli("clients", "create", "bad", "--jwks-url", "http://example.com/j")
    assert refused.returncode == 1 and "https" in refused.stderr


def test_the_admin_api_manages_clients_and_checks_what_it_is_given(
    social: Social, admin: httpx.Client
) -> None:
    base = f"{social.issuer.url}/admin/clients"
    made = admin.post(base, json={"name": "nightly", "roles": ["ops"], "scopes": ["a:b"]})
    assert made.status_code == 201
    cid, secret = made.json()["client_id"], made.json()["client_secret"]
    assert cid in [c["client_id"] for c in admin.get(base).json()["clients"]]
    shown = admin.get(f"{base}/{cid}").json()
    assert "client_secret" not in shown and all("value" not in c for c in shown["credentials"])
    assert secret not in admin.get(base).text
    regrant = admin.put(f"{base}/{cid}/grants", json={"roles": [], "scopes": ["a:c"]})
    assert regrant.json()["scopes"] == ["a:c"]
    assert token(social, data={**GRANT, "scope": "a:c"}, auth=(cid, secret)).status_code == 200
    bad_bodies = [
        [], {"name": ""}, {"name": "x", "kind": "robot"}, {"name": "x", "roles": ["no spaces"]},
        {"name": "x", "scopes": ['quo"te']}, {"name": "x", "colour": 1},
        {"name": "x", "credential": {"type": "password"}},
        {"name": "x", "credential": {"type": "jwk", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}},
        {"name": "x", "credential": {"type": "jwk", "jwk": {**SigningKey.generate().public_jwk(),
                                                            "d": "private"}}},
        {"name": "x", "kind": "device", "credential": {"type": "secret"}},
    ]  # fmt: skip
    for body in bad_bodies:
        answer = admin.post(base, json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert admin.post(base, content=b"{not json").status_code == 400
    assert admin.get(f"{base}/not-an-id").status_code == 404
    assert admin.delete(f"{base}/{cid}/credentials/cred_AAAAAAAAAAAA").status_code == 404
    no_csrf = admin.post(base, json={"name": "x"}, headers={"X-CSRF-Token": "wrong"})
    assert no_csrf.status_code == 403
    with closing(browser()) as stranger:
        assert login(social, stranger, "kakao", {**KAKAO_USER, "id": 7}).status_code == 303
        assert stranger.get(base).status_code == 403
    assert admin.delete(f"{base}/{cid}").status_code == 204


def test_a_device_client_may_not_use_client_credentials_nor_a_service_the_device_flow(
    social: Social,
) -> None:
    device = cli(social, "create", "cli tool", "--device")["client_id"]
    answer = token(social, data={**GRANT, "client_id": device})
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"
    cid, secret = service(social)
    asked = token(social, data={"client_id": cid}, auth=(cid, secret))  # no grant_type
    assert asked.json()["error"] == "unsupported_grant_type"
    with closing(browser()) as http:
        flow = http.post(
            f"{social.issuer.url}/device_authorization", data={"client_id": cid}, auth=(cid, secret)
        )
    assert flow.status_code == 400 and flow.json()["error"] == "unauthorized_client"


def test_discovery_says_what_is_served(social: Social) -> None:
    document = httpx.get(f"{social.issuer.url}/.well-known/openid-configuration").json()
    assert {"client_credentials", "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token"} <= set(document["grant_types_supported"])  # fmt: skip
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}  # fmt: skip
    assert document["device_authorization_endpoint"] == f"{social.issuer.url}/device_authorization"
    assert "HS256" not in document["token_endpoint_auth_signing_alg_values_supported"]


def test_an_authenticated_client_is_limited_but_wrong_secrets_do_not_spend_its_allowance(
    social: Social, logs: Path, tmp_path: Path
) -> None:
    strict = IssuerProcess(
        {"AUTHGATE_REDIS_URL": social.issuer.env["AUTHGATE_REDIS_URL"],
         "AUTHGATE_KEYS_DIR": str(tmp_path / "keys"), "AUTHGATE_TRUSTED_PROXIES": "127.0.0.0/8",
         "AUTHGATE_CLIENT_TOKEN_RATE": "3", "AUTHGATE_EVENTS_RELAY": "false",
         "AUTHGATE_INBOUND_QUEUE": "off"},
        logs, amqp_url=social.issuer.env["AUTHGATE_AMQP_URL"],
    )  # fmt: skip
    try:
        cid, secret = service(social)
        wrong = secret.split(".")[0] + ".wrong"
        url = f"{strict.url}/token"
        for _ in range(5):  # a stranger sending its id with wrong secrets, from many addresses
            with closing(browser()) as http:
                assert http.post(url, data=GRANT, auth=(cid, wrong)).status_code == 401
        with closing(browser()) as http:
            answers = [http.post(url, data=GRANT, auth=(cid, secret)) for _ in range(4)]
    finally:
        strict.stop()
    assert [a.status_code for a in answers] == [200, 200, 200, 429]  # 3 a minute here
    assert int(answers[3].headers["retry-after"]) > 0
