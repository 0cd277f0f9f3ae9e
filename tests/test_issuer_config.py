"""Issuer configuration: every problem at once, through the real entry point; secrets
stay out of messages and logs."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path

from .social import Social


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
    """Run after the other issuer tests in this session: whatever they did, the log holds
    decisions, never what was exchanged."""
    from .test_issuer_accounts import signed_in, token_pair

    http, profile = signed_in(social)
    with closing(http):
        pair = token_pair(social, http, profile["csrf_token"])
        cookie = http.cookies["authgate_session"]
    log = social.issuer.log()
    assert "login success" in log
    for secret in (
        pair["access_token"],
        pair["refresh_token"],
        cookie,
        profile["csrf_token"],
        "fake-client-secret",
    ):
        assert secret not in log
    for grant in social.fake.state.issued:  # provider access tokens and codes
        assert grant not in log and grant.removeprefix("at-") not in log
