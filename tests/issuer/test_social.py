"""Kakao and GitHub logins against local servers in those providers' documented shapes,
and the attacks on the login itself: state, PKCE, nonce, ID tokens, redirects."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from issuer.redirects import safe_return_url

from ..social import (
    APP,
    CLIENT_ID,
    GITHUB_USER,
    KAKAO_USER,
    SECRET,
    Social,
    browser,
    login,
    me,
    start,
)


def failure_code(response: httpx.Response) -> str:
    assert response.status_code >= 400, response.status_code
    assert "authgate_session" not in response.headers.get("set-cookie", "")
    return response.text.split("<small>")[1].split("</small>")[0]


def test_kakao_login(social: Social) -> None:
    with browser() as http:
        done = login(social, http, "kakao", KAKAO_USER)
        assert done.status_code == 303 and done.headers["location"] == f"{APP}/home"
        profile = me(social, http)
    assert profile["name"] == "홍길동" and profile["email"] == "gildong@kakao.test"
    assert profile["identities"] == ["kakao:4061237812"]
    token_call = next(
        r
        for r in social.fake.state.requests
        if r[1] == "/kakao/oauth/token" and "code_verifier" in r[3]
    )
    form = parse_qs(token_call[3])
    assert form["grant_type"] == ["authorization_code"] and form["client_secret"] == [SECRET]
    assert token_call[2]["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_kakao_unverified_email_is_not_kept(social: Social) -> None:
    user = json.loads(json.dumps(KAKAO_USER))
    user["id"] = 4061237813
    user["kakao_account"]["is_email_verified"] = False
    with browser() as http:
        assert login(social, http, "kakao", user).status_code == 303
        assert me(social, http)["email"] == ""


def test_github_login_takes_the_verified_primary_email(social: Social) -> None:
    with browser() as http:
        assert login(social, http, "github", GITHUB_USER).status_code == 303
        profile = me(social, http)
    assert profile["identities"] == ["github:583231"]
    assert profile["email"] == "octocat@github.test" and profile["name"] == "The Octocat"
    api_call = next(r for r in social.fake.state.requests if r[1] == "/github/user")
    assert api_call[2]["Accept"] == "application/vnd.github+json"


def test_github_unverified_primary_email_is_not_used(social: Social) -> None:
    user = {
        "user": {**GITHUB_USER["user"], "id": 583232},
        "emails": [
            {"email": "spoof@victim.test", "primary": True, "verified": False, "visibility": None}
        ],
    }
    with browser() as http:
        assert login(social, http, "github", user).status_code == 303
        assert me(social, http)["email"] == ""


@pytest.mark.parametrize(
    ("provider", "failure", "code"),
    [
        ("kakao", (400, {"error": "invalid_grant", "error_code": "KOE320"}), "invalid_grant"),
        ("kakao", (401, {"error": "invalid_client", "error_code": "KOE010"}), "invalid_client"),
        (
            "kakao",
            (400, {"error": "invalid_grant", "error_code": "KOE303"}),
            "redirect_uri_mismatch",
        ),
        ("kakao", (500, {"error": "server_error"}), "provider_unavailable"),
        ("github", (200, {"error": "bad_verification_code"}), "invalid_grant"),
        ("github", (200, {"error": "incorrect_client_credentials"}), "invalid_client"),
        ("github", (200, {"error": "redirect_uri_mismatch"}), "redirect_uri_mismatch"),
    ],
)
def test_token_endpoint_errors_map_to_stable_codes(
    social: Social, provider: str, failure: tuple[int, dict[str, Any]], code: str
) -> None:
    social.fake.state.token_failure = failure
    with browser() as http:
        assert (
            failure_code(
                login(social, http, provider, KAKAO_USER if provider == "kakao" else GITHUB_USER)
            )
            == code
        )


def test_profile_api_errors(social: Social) -> None:
    social.fake.state.api_failure = (401, {"msg": "this access token does not exist", "code": -401})
    with browser() as http:
        assert failure_code(login(social, http, "kakao", KAKAO_USER)) == "invalid_response"


def test_provider_error_parameter(social: Social) -> None:
    with browser() as http:
        _, state = start(social, http, "kakao")
        cancelled = http.get(f"{social.issuer.url}/callback/kakao",
                             params={"error": "access_denied", "error_description": "User denied access", "state": state})  # fmt: skip
        assert failure_code(cancelled) == "access_denied"
        # The state was spent by that callback: the browser's sign-in starts again, once.
        spent = {"code": "x", "state": state}
        _restarts(social, http, http.get(f"{social.issuer.url}/callback/kakao", params=spent))
        again = http.get(f"{social.issuer.url}/callback/kakao", params=spent)
        assert failure_code(again) == "invalid_state"
        assert 'href="/login?rd=' in again.text  # "start again" keeps where it was going


def _restarts(social: Social, http: httpx.Client, response: httpx.Response) -> None:
    """A callback without a live state (expired, spent, another tab's) starts this
    browser's latest sign-in again instead of ending in an error, and signs no one in."""
    assert response.status_code == 303, response.text[:300]
    assert "authgate_session" not in response.headers.get("set-cookie", "")
    location = response.headers["location"]
    assert location.startswith("/login/kakao?rd=") and location.endswith("&restart=1")
    fresh = http.get(f"{social.issuer.url}{location}")
    assert fresh.status_code == 302 and "state=" in fresh.headers["location"]


def test_state_tampered_replayed_or_from_another_browser(social: Social) -> None:
    with browser() as http:
        location, state = start(social, http, "kakao")
        code = social.fake.grant(location, KAKAO_USER)
        tampered = {"code": code, "state": state + "x"}
        _restarts(social, http, http.get(f"{social.issuer.url}/callback/kakao", params=tampered))
        again = http.get(f"{social.issuer.url}/callback/kakao", params=tampered)
        assert failure_code(again) == "invalid_state"  # once only: never a loop
    with browser() as victim:  # login CSRF: the attacker's callback in the victim's browser
        location, state = start(social, victim, "kakao")
        code = social.fake.grant(location, KAKAO_USER)
        with browser() as attacker_browser:
            forged = attacker_browser.get(
                f"{social.issuer.url}/callback/kakao", params={"code": code, "state": state}
            )
            assert failure_code(forged) == "invalid_state"
    with browser() as http:
        location, state = start(social, http, "kakao")
        callback = {"code": social.fake.grant(location, KAKAO_USER), "state": state}
        assert http.get(f"{social.issuer.url}/callback/kakao", params=callback).status_code == 303
        # Replayed after the sign-in it finished: nothing to restart (the sign-in is over).
        assert (
            failure_code(http.get(f"{social.issuer.url}/callback/kakao", params=callback))
            == "invalid_state"
        )


def test_state_of_one_provider_is_refused_at_another(social: Social) -> None:
    with browser() as http:
        location, state = start(social, http, "github")
        code = social.fake.grant(location, GITHUB_USER)
        assert (
            failure_code(
                http.get(
                    f"{social.issuer.url}/callback/kakao", params={"code": code, "state": state}
                )
            )
            == "invalid_state"
        )


def _tamper(social: Social, state: str, **changes: str) -> None:
    key = f"authgate:login-state:{state}"
    record = json.loads(social.redis.get(key) or "{}")
    social.redis.set(key, json.dumps({**record, **changes}), keepttl=True)


def test_wrong_pkce_verifier_is_refused_by_the_provider(social: Social) -> None:
    with browser() as http:
        location, state = start(social, http, "kakao")
        code = social.fake.grant(location, KAKAO_USER)
        _tamper(social, state, verifier="not-the-verifier-" + "x" * 40)
        assert (
            failure_code(
                http.get(
                    f"{social.issuer.url}/callback/kakao", params={"code": code, "state": state}
                )
            )
            == "invalid_grant"
        )


def test_code_replay_is_refused(social: Social) -> None:
    with browser() as http:
        location, state = start(social, http, "kakao")
        record = social.redis.get(f"authgate:login-state:{state}")
        prelogin = http.cookies["authgate_prelogin"]
        code = social.fake.grant(location, KAKAO_USER)
        assert (
            http.get(
                f"{social.issuer.url}/callback/kakao", params={"code": code, "state": state}
            ).status_code
            == 303
        )
        # Even with its state and browser binding restored, a spent code buys nothing.
        social.redis.set(f"authgate:login-state:{state}", record or "", ex=60)
        http.cookies.set("authgate_prelogin", prelogin)
        assert (
            failure_code(
                http.get(
                    f"{social.issuer.url}/callback/kakao", params={"code": code, "state": state}
                )
            )
            == "invalid_grant"
        )


@pytest.mark.parametrize(
    "change",
    [
        {"claims": {"nonce": "someone-elses-nonce"}},
        {"claims": {"aud": "another-client"}},
        {"claims": {"aud": [CLIENT_ID, "another-client"]}},  # several audiences and no azp
        {"claims": {"iss": "https://evil.test"}},
        {"claims": {"exp": 1}},
        {"claims": {"iat": 1}},
        {"claims": {"sub": "999"}},  # another user than the profile's
        {"key": "other"},
    ],
)
def test_bad_id_tokens_are_refused(social: Social, change: dict[str, Any]) -> None:
    social.fake.state.id_token_claims = change.get("claims", {})
    if change.get("key"):
        social.fake.state.id_token_key = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
    try:
        with browser() as http:
            code = failure_code(login(social, http, "kakao", KAKAO_USER))
    finally:
        social.fake.state.id_token_claims, social.fake.state.id_token_key = {}, None
    assert code in ("invalid_id_token", "invalid_response"), code


@pytest.mark.parametrize(
    "rd",
    [
        "//evil.test/x",
        "/\\evil.test",
        "/\\/evil.test",
        "https://good@evil.test/",
        "https://127.0.0.1:8080@evil.test/",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https://evil.test/",
        "http://127.0.0.1:8081/",
        "https://127.0.0.1:8080/",
        "http://127.0.0.1:8080.evil.test/",
        " http://127.0.0.1:8080/",
        "http://127.0.0.1:8080\\@evil.test/",
        "\x00/x",
        "/x\ny",
        "http:///evil.test",
        "http://127.0.0.1:99999/",
    ],
)
def test_open_redirects_are_refused(rd: str) -> None:
    assert safe_return_url(rd, (APP,)) == "/"


@pytest.mark.parametrize("rd", [f"{APP}/", f"{APP}/a/b?c=d#e", "/home", "/a?next=%2F%2Fevil"])
def test_allowed_redirects(rd: str) -> None:
    assert safe_return_url(rd, (APP,)) == rd


def test_evil_rd_through_the_whole_login_lands_on_the_issuer(social: Social) -> None:
    """Refused, it becomes the issuer's landing page (AUTHGATE_LANDING_URL's default)."""
    with browser() as http:
        done = login(social, http, "kakao", KAKAO_USER, rd="https://good@evil.test/")
        assert done.status_code == 303 and done.headers["location"] == "/_authgate/account"


def test_login_start_is_rate_limited_per_client(social: Social) -> None:
    with browser() as http:
        statuses = [http.get(f"{social.issuer.url}/login/kakao").status_code for _ in range(32)]
        assert statuses[:30] == [302] * 30
        limited = http.get(f"{social.issuer.url}/login/kakao")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    with browser() as other:  # another client is not affected
        assert other.get(f"{social.issuer.url}/login/kakao").status_code == 302
