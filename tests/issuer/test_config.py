"""Issuer configuration: every problem at once, through the real entry point; secrets
stay out of messages and logs."""

from __future__ import annotations

import secrets
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from ..social import Social, browser


def run_issuer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "authgate-issuer"), *args]
    return subprocess.run(command, env={"PATH": "/usr/bin:/bin", **(env or {})}, capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip


def test_bad_configuration_lists_every_problem(tmp_path: Path) -> None:
    providers = tmp_path / "providers.yml"
    providers.write_text(
        "providers:\n"
        "  - {name: Kakao!, type: kakao, client_id: k}\n"
        "  - {name: g, type: oidc, client_id: c, client_secret: {env: NOT_SET_ANYWHERE}}\n"
        "  - {name: h, type: github, client_id: c, client_secret: s3cr3t-value, colour: red}\n"
        "  - {name: h, type: github, client_id: c, client_secret: x}\n"
        "  - {name: s, type: saml, client_id: c}\n"
    )
    result = run_issuer(
        "--public-url", "http://login.example.com", "--return-origins", "https://ok.test,javascript:x",
        "--signing-algorithm", "HS256", "--access-token-ttl", "5", "--providers-file", str(providers),
    )  # fmt: skip
    assert result.returncode == 2
    err = result.stderr
    for expected in [
        "AUTHGATE_PUBLIC_URL: plain http is only allowed on loopback",
        "AUTHGATE_RETURN_ORIGINS / --return-origins (from --return-origins): 'javascript:x' is not an origin",
        "AUTHGATE_SIGNING_ALGORITHM: 'HS256' is not EdDSA or ES256",
        "AUTHGATE_ACCESS_TOKEN_TTL / --access-token-ttl (from --access-token-ttl): 5 is outside 60..86400",
        "providers[0].name: required; lower-case letters, digits, - and _",
        "providers[1].client_secret: environment variable NOT_SET_ANYWHERE is not set",
        "providers[1].issuer: required for oidc",
        "providers[2].colour: unknown key",
        "providers[3].name: 'h' is used twice",
        "providers[4].type: must be one of kakao, oidc, github",
    ]:
        assert expected in err, expected
    assert "s3cr3t-value" not in err
    assert "Traceback" not in err


def test_unknown_command_prints_usage() -> None:
    result = run_issuer("frobnicate")
    assert result.returncode == 2 and "usage: authgate-issuer" in result.stderr


def test_no_code_token_or_secret_reaches_the_log(social: Social) -> None:
    """Every kind of secret the issuer handles goes through it here — a provider sign-in
    (codes, provider tokens), session and refresh tokens, a rotation, a local account's
    password, a wrong password, logout — and the log holds decisions, never them. (On
    its own: it used to rely on other modules' tests having run first.)"""
    from .test_accounts import _local_form, refresh, signed_in, token_pair

    http, profile = signed_in(social)
    with closing(http):
        pair = token_pair(social, http, profile["csrf_token"])
        rotated = refresh(social, pair["refresh_token"]).json()
        cookie = http.cookies["authgate_session"]
        logout = http.post(
            f"{social.issuer.url}/logout", headers={"X-CSRF-Token": profile["csrf_token"]}
        )
        assert logout.status_code in (204, 303), logout.text
    password, wrong = f"pw-{secrets.token_urlsafe(12)}", f"wrong-{secrets.token_urlsafe(12)}"
    email = f"log{secrets.token_hex(4)}@example.test"
    with browser() as local:
        form = _local_form(social, local, email=email, password=password, name="Log Test")
        assert local.post(f"{social.issuer.url}/register", data=form).status_code == 303
        form = _local_form(social, local, email=email, password=wrong)
        assert local.post(f"{social.issuer.url}/login/local", data=form).status_code != 303
        form = _local_form(social, local, email=email, password=password)
        assert local.post(f"{social.issuer.url}/login/local", data=form).status_code == 303
    log = social.issuer.log()
    assert "login success" in log
    for secret in (
        pair["access_token"],
        pair["refresh_token"],
        rotated["access_token"],
        rotated["refresh_token"],
        cookie,
        profile["csrf_token"],
        "fake-client-secret",
        password,
        wrong,
    ):
        assert secret not in log
    assert social.fake.state.issued, "the provider issued nothing?"
    for grant in social.fake.state.issued:  # provider access tokens and codes
        assert grant not in log and grant.removeprefix("at-") not in log


def test_sentinel_and_cluster_urls_are_taken() -> None:
    # Each fails on its port alone: the Redis URL is not among the problems.
    for url in ("redis+sentinel://s1,s2/authgate/1", "redis+cluster://:pw@n1:7000,n2:7001"):
        result = run_issuer("--redis-url", url, "--port", "x")
        assert result.returncode == 2 and "AUTHGATE_PORT" in result.stderr, result.stderr
        assert "AUTHGATE_REDIS_URL" not in result.stderr, result.stderr
        assert "pw@" not in result.stderr and "Traceback" not in result.stderr
