"""Tokens, revocation, the admin API, local accounts and signing keys, against the issuer
process and a verifier that trusts it."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from issuer import keyspace
from issuer.api import SESSION_GRANT
from issuer.keys import KeyStore

from ..harness import VerifierProcess, verifier_env
from ..polling import poll, wait_until
from ..social import APP, GITHUB_USER, KAKAO_USER, Social, browser, login, me


@pytest.fixture(scope="module")
def verifier_of_issuer(social: Social, redis_url: str, logs: Path) -> Iterator[VerifierProcess]:
    process = VerifierProcess(
        verifier_env(
            f"{social.issuer.url}/.well-known/jwks.json",
            redis_url,
            AUTHGATE_ISSUER=social.issuer.url,
        ),
        logs,
    )
    process.wait_ready()
    yield process
    process.stop()


def verify(verifier: VerifierProcess, token: str) -> httpx.Response:
    return httpx.get(verifier.url + "/verify", headers={"Authorization": f"Bearer {token}"})


def fresh_id() -> int:
    return 10**9 + secrets.randbelow(10**12)


def user_of(kakao_id: int) -> dict[str, Any]:
    user: dict[str, Any] = json.loads(json.dumps(KAKAO_USER))
    user["id"] = kakao_id
    user["kakao_account"]["email"] = f"k{kakao_id}@kakao.test"
    return user


def signed_in(social: Social, kakao_id: int | None = None) -> tuple[httpx.Client, dict[str, Any]]:
    """A browser signed in as a new Kakao user (ids are random: Redis outlives test runs)."""
    kakao_id = kakao_id or fresh_id()
    http = browser()
    assert login(social, http, "kakao", user_of(kakao_id)).status_code == 303
    return http, me(social, http)


def token_pair(social: Social, http: httpx.Client, csrf: str) -> dict[str, Any]:
    response = http.post(
        f"{social.issuer.url}/token",
        data={"grant_type": SESSION_GRANT},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def refresh(social: Social, token: str) -> httpx.Response:
    return httpx.post(
        f"{social.issuer.url}/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )


def test_session_grant_needs_csrf(social: Social) -> None:
    http, _ = signed_in(social)
    with closing(http):
        refused = http.post(f"{social.issuer.url}/token", data={"grant_type": SESSION_GRANT})
        assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
        evil = http.post(f"{social.issuer.url}/token", data={"grant_type": SESSION_GRANT},
                         headers={"X-CSRF-Token": "guess", "Origin": "https://evil.test"})  # fmt: skip
        assert evil.status_code == 403


def test_access_token_works_at_the_verifier_and_refresh_rotates(
    social: Social, verifier_of_issuer: VerifierProcess
) -> None:
    http, profile = signed_in(social)
    with closing(http):
        pair = token_pair(social, http, profile["csrf_token"])
    assert pair["token_type"] == "Bearer" and pair["refresh_token"].startswith("agr_")
    assert len(pair["refresh_token"]) >= 4 + 43  # 256 bits, URL-safe base64
    answer = verify(verifier_of_issuer, pair["access_token"])
    assert answer.status_code == 204 and answer.headers["x-auth-user"] == profile["id"]
    rotated = refresh(social, pair["refresh_token"])
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    assert rotated.json()["refresh_token"] != pair["refresh_token"]
    assert verify(verifier_of_issuer, rotated.json()["access_token"]).status_code == 204
    # Only hashes are stored: no key or value in Redis holds the token itself.
    for key in social.redis.scan_iter("authgate:{*}:refresh:*"):
        assert pair["refresh_token"] not in key
        assert all(pair["refresh_token"] not in str(v) for v in social.redis.hgetall(key).values())


def test_concurrent_double_refresh_gets_one_answer(
    social: Social, verifier_of_issuer: VerifierProcess
) -> None:
    http, profile = signed_in(social)
    with closing(http):
        pair = token_pair(social, http, profile["csrf_token"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: refresh(social, pair["refresh_token"]), range(2)))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert verify(verifier_of_issuer, answers[0].json()["access_token"]).status_code == 204


def test_refresh_token_reuse_revokes_the_session_at_once(
    social: Social, verifier_of_issuer: VerifierProcess
) -> None:
    http, profile = signed_in(social)
    with closing(http):
        pair = token_pair(social, http, profile["csrf_token"])
        cookie = http.cookies["authgate_session"]
    first = refresh(social, pair["refresh_token"])
    assert first.status_code == 200
    newest = first.json()
    assert verify(verifier_of_issuer, newest["access_token"]).status_code == 204
    # Past the grace window, the old token comes back: a thief or a confused client.
    social.redis.hset(next(iter(_refresh_keys(social, pair))), "used_at", str(time.time() - 60))
    reused = refresh(social, pair["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # The whole family and the session are gone: every token of it is refused at once.
    assert refresh(social, newest["refresh_token"]).status_code == 400
    assert verify(verifier_of_issuer, newest["access_token"]).status_code == 401
    assert verify(verifier_of_issuer, cookie).status_code == 401


def _refresh_keys(social: Social, pair: dict[str, Any]) -> list[str]:
    from issuer.tokens import token_hash

    return [keyspace.refresh(token_hash(pair["refresh_token"]))]


def test_revoke_ends_the_session(social: Social, verifier_of_issuer: VerifierProcess) -> None:
    http, profile = signed_in(social)
    with closing(http):
        pair = token_pair(social, http, profile["csrf_token"])
    assert (
        httpx.post(f"{social.issuer.url}/revoke", data={"token": pair["refresh_token"]}).status_code
        == 200
    )
    assert verify(verifier_of_issuer, pair["access_token"]).status_code == 401
    # Unknown tokens are answered 200 too (RFC 7009 §2.2).
    assert (
        httpx.post(f"{social.issuer.url}/revoke", data={"token": "agr_nothing"}).status_code == 200
    )
    assert httpx.post(f"{social.issuer.url}/revoke", data={}).status_code == 400


def test_bad_token_requests_get_rfc6749_errors(social: Social) -> None:
    assert refresh(social, "agr_unknown").json() == {
        "error": "invalid_grant",
        "error_description": "refresh token unknown or expired",
    }
    unsupported = httpx.post(f"{social.issuer.url}/token", data={"grant_type": "password"})
    assert (
        unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    )


def test_admin_api(social: Social, verifier_of_issuer: VerifierProcess) -> None:
    admin_http, admin = signed_in(social)
    user_http, user = signed_in(social)
    with closing(admin_http), closing(user_http):
        assert admin_http.get(f"{social.issuer.url}/admin/users").status_code == 403
        promoted = social.issuer.cli("admin", "promote", admin["id"])
        assert promoted.returncode == 0, promoted.stderr
        csrf = {"X-CSRF-Token": admin["csrf_token"]}
        listing = admin_http.get(
            f"{social.issuer.url}/admin/users", params={"q": user["email"], "limit": 5}
        ).json()
        assert [u["id"] for u in listing["users"]] == [user["id"]]
        assert (
            admin_http.get(f"{social.issuer.url}/admin/users/{user['id']}").json()["email"]
            == user["email"]
        )
        # Role change: the user's live session carries it at once.
        session_token = user_http.cookies["authgate_session"]
        assert verify(verifier_of_issuer, session_token).headers.get("x-auth-roles") is None
        changed = admin_http.put(
            f"{social.issuer.url}/admin/users/{user['id']}/roles",
            json={"roles": ["editor"]},
            headers=csrf,
        )
        assert changed.status_code == 200 and changed.json()["roles"] == ["editor"]
        wait_until(
            lambda: verify(verifier_of_issuer, session_token).headers.get("x-auth-roles") == "editor",
            2, "the role change never reached the verifier",
        )  # fmt: skip
        # No CSRF token, no change.
        assert (
            admin_http.put(
                f"{social.issuer.url}/admin/users/{user['id']}/roles", json={"roles": ["admin"]}
            ).status_code
            == 403
        )
        # Suspension ends every session at once, and the next login is refused.
        assert (
            admin_http.post(
                f"{social.issuer.url}/admin/users/{user['id']}/suspend", headers=csrf
            ).status_code
            == 200
        )
        assert verify(verifier_of_issuer, session_token).status_code == 401
        with browser() as again:
            kakao_id = int(user["identities"][0].split(":")[1])
            assert login(social, again, "kakao", user_of(kakao_id)).status_code == 403
        assert (
            admin_http.post(
                f"{social.issuer.url}/admin/users/{user['id']}/reactivate", headers=csrf
            ).json()["status"]
            == "active"
        )
        # Deletion.
        assert (
            admin_http.delete(
                f"{social.issuer.url}/admin/users/{user['id']}", headers=csrf
            ).status_code
            == 204
        )
        assert admin_http.get(f"{social.issuer.url}/admin/users/{user['id']}").status_code == 404
        bad = admin_http.put(
            f"{social.issuer.url}/admin/users/{admin['id']}/roles",
            json={"roles": "admin"},
            headers=csrf,
        )
        assert bad.status_code == 400


def test_a_user_may_delete_themselves(social: Social, verifier_of_issuer: VerifierProcess) -> None:
    http, profile = signed_in(social)
    with closing(http):
        token = http.cookies["authgate_session"]
        assert (
            http.delete(
                f"{social.issuer.url}/me", headers={"X-CSRF-Token": profile["csrf_token"]}
            ).status_code
            == 204
        )
        assert http.get(f"{social.issuer.url}/me").status_code == 401
    assert verify(verifier_of_issuer, token).status_code == 401
    with browser() as again:  # signing in again makes a new user
        kakao_id = int(profile["identities"][0].split(":")[1])
        assert login(social, again, "kakao", user_of(kakao_id)).status_code == 303
        assert me(social, again)["id"] != profile["id"]


def test_same_email_from_another_provider_is_another_user(social: Social) -> None:
    http, kakao = signed_in(social)
    github: dict[str, Any] = {
        "user": {**GITHUB_USER["user"], "id": fresh_id()},
        "emails": [
            {"email": kakao["email"], "primary": True, "verified": True, "visibility": None}
        ],
    }
    with closing(http), browser() as other:
        assert login(social, other, "github", github).status_code == 303
        theirs = me(social, other)
    # The same verified email, yet another user: accounts are never joined by email.
    assert theirs["email"] == kakao["email"] and theirs["id"] != kakao["id"]


def _local_form(
    social: Social, http: httpx.Client, page: str = "/login", **fields: str
) -> dict[str, str]:
    """A form with the pre-login token of `page` (the sign-in page, or /register for a
    sign-up: the sign-in page sends someone already signed in straight on)."""
    answer = http.get(f"{social.issuer.url}{page}")
    csrf = answer.text.split('name="login_csrf" value="')[1].split('"')[0]
    return {"login_csrf": csrf, **fields}


def test_local_accounts(social: Social) -> None:
    local_email = f"Local{fresh_id()}@Example.test"
    with browser() as http:
        form = _local_form(
            social,
            http,
            email=local_email,
            password="correct horse battery",
            name="Lo Cal",
            rd=f"{APP}/x",
        )
        registered = http.post(f"{social.issuer.url}/register", data=form)
        # Registration signs nobody in and answers alike for a taken email (issue 12, 6).
        assert registered.status_code == 303 and registered.headers["location"].startswith(
            "/login?"
        )
        form = _local_form(
            social, http, email=local_email, password="correct horse battery", rd=f"{APP}/x"
        )
        signed = http.post(f"{social.issuer.url}/login/local", data=form)
        assert signed.status_code == 303 and signed.headers["location"] == f"{APP}/x"
        assert me(social, http)["email"] == local_email
        again = _local_form(
            social, http, "/register", email=local_email.upper(), password="another password"
        )
        assert http.post(f"{social.issuer.url}/register", data=again).status_code == 303
    stored = social.redis.hget(
        keyspace.user(social.redis.get(keyspace.local(local_email))), "password"
    )
    assert stored and stored.startswith("$argon2id$")
    with browser() as http:
        ok = http.post(
            f"{social.issuer.url}/login/local",
            data=_local_form(
                social, http, email=local_email.lower(), password="correct horse battery"
            ),
        )
        assert ok.status_code == 303
    with browser() as http:
        wrong = http.post(
            f"{social.issuer.url}/login/local",
            data=_local_form(social, http, email=local_email.lower(), password="wrong password!"),
        )
        nobody = f"nobody{fresh_id()}@example.test"
        unknown = http.post(
            f"{social.issuer.url}/login/local",
            data=_local_form(social, http, email=nobody, password="wrong password!"),
        )
        assert wrong.status_code == unknown.status_code == 401
        # The same answer but for the email each typed, which the form keeps: no account
        # enumeration.
        assert wrong.text.replace(local_email.lower(), "E") == unknown.text.replace(nobody, "E")
        no_csrf = http.post(
            f"{social.issuer.url}/login/local",
            data={"email": "local@example.test", "password": "x"},
        )
        assert no_csrf.status_code == 400


def test_brute_force_locks_the_account_with_429(social: Social) -> None:
    brute = f"brute{fresh_id()}@example.test"
    with browser() as http:
        form = _local_form(social, http, email=brute, password="the real password")
        assert http.post(f"{social.issuer.url}/register", data=form).status_code == 303
    statuses = []
    for _ in range(6):
        with browser() as attacker:  # a new address each time: the per-account lock still holds
            statuses.append(attacker.post(f"{social.issuer.url}/login/local",
                                          data=_local_form(social, attacker, email=brute, password="guess")))  # fmt: skip
    assert [r.status_code for r in statuses[:5]] == [401] * 5
    assert statuses[5].status_code == 429 and int(statuses[5].headers["retry-after"]) >= 1
    with browser() as owner:  # even the right password waits out the lock
        locked = owner.post(
            f"{social.issuer.url}/login/local",
            data=_local_form(social, owner, email=brute, password="the real password"),
        )
        assert locked.status_code == 429


def test_key_rotation_publishes_ahead_and_retires_later(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = KeyStore(str(tmp_path), clock=lambda: now[0])
    store.ensure("EdDSA")
    first = store.signing_key().kid
    new = store.rotate("ES256", publish_ahead=300, longest_token_life=3600)
    assert {k.kid for k in store.published()} == {first, new.kid}
    assert store.signing_key().kid == first  # not yet: verifiers must see the key first
    now[0] += 301
    assert store.signing_key().kid == new.kid
    now[0] += 3600
    assert {k.kid for k in store.published()} == {new.kid}  # the old key retired
    assert oct((tmp_path / f"{new.kid}.pem").stat().st_mode)[-3:] == "600"


def test_keys_rotate_cli_and_jwks(social: Social) -> None:
    before = httpx.get(f"{social.issuer.url}/.well-known/jwks.json").json()["keys"]
    result = social.issuer.cli("keys", "rotate")
    assert result.returncode == 0, result.stderr
    assert "published now" in result.stdout
    after = poll(lambda: httpx.get(f"{social.issuer.url}/.well-known/jwks.json").json()["keys"],
                 lambda keys: len(keys) == len(before) + 1, 5, "the new key was never published")  # fmt: skip
    assert all(k["use"] == "sig" and k["alg"] in ("EdDSA", "ES256") and "d" not in k for k in after)
    listing = social.issuer.cli("keys", "list")
    assert listing.returncode == 0 and len(listing.stdout.strip().splitlines()) == len(after)


def test_discovery(social: Social) -> None:
    document = httpx.get(f"{social.issuer.url}/.well-known/openid-configuration").json()
    assert document["issuer"] == social.issuer.url
    assert document["jwks_uri"] == f"{social.issuer.url}/.well-known/jwks.json"
    # No ID tokens are issued (sign-in sets a session cookie), so none are advertised.
    assert not any(name.startswith("id_token") for name in document)
