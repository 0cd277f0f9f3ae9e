"""Configuration: every problem reported at start, through the real entry point."""

from __future__ import annotations

import subprocess
from pathlib import Path

from verifier.settings import load_settings

from ..harness import verifier_command


def run_verifier(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [verifier_command(), *args], env=env or {"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip


def test_all_problems_are_reported_together_and_the_exit_is_non_zero(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text("rules:\n  - {name: x, policy: sometimes}\n")
    result = run_verifier(
        "--port", "http", "--algorithms", "HS256,none,EdDSA", "--redis-url", "mysql://db",
        "--jwks-url", "ftp://keys", "--leeway", "600", "--session-cookie", "a;b",
        "--policy-file", str(policy), "--login-url", "javascript:alert(1)",
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert lines[0] == "authgate-verifier: invalid configuration:"
    expected = [
        "AUTHGATE_PORT / --port (from --port): 'http' is not a whole number",
        "AUTHGATE_REDIS_URL / --redis-url (from --redis-url): 'mysql://db' must start with one of "
        "redis+cluster://, redis+sentinel://, redis://, rediss+cluster://, rediss+sentinel://, "
        "rediss://, unix://",
        "AUTHGATE_JWKS_URL / --jwks-url (from --jwks-url): 'ftp://keys' must use http or https",
        "AUTHGATE_LEEWAY / --leeway (from --leeway): 600 is outside 0..60",
        "AUTHGATE_SESSION_COOKIE / --session-cookie (from --session-cookie): 'a;b' is not a valid cookie name",
        "AUTHGATE_ISSUER / --issuer: required",
        "AUTHGATE_AUDIENCE / --audience: required",
        f"AUTHGATE_POLICY_FILE {policy}: rules[0].policy: must be one of public, authenticated, deny",
    ]
    for line in expected:
        assert f"- {line}" in lines, line
    assert any(
        line.startswith("- AUTHGATE_ALGORITHMS") and "HS256, none not allowed" in line
        for line in lines
    )
    assert any(line.startswith("- AUTHGATE_LOGIN_URL") for line in lines)
    assert "Traceback" not in result.stderr


def test_environment_is_read_and_flags_win(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    env = {"AUTHGATE_ISSUER": "https://i.test", "AUTHGATE_AUDIENCE": "a", "AUTHGATE_JWKS_FILE": str(jwks),
           "AUTHGATE_PORT": "7000", "AUTHGATE_ALGORITHMS": "ES256"}  # fmt: skip
    settings = load_settings(["--port", "7001"], env)
    assert settings.port == 7001
    assert settings.algorithms == frozenset({"ES256"})
    assert settings.jwks_file == str(jwks)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.session_cookie == "__Host-authgate_session"


def test_jwks_source_must_be_exactly_one(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("{}")
    both = {"AUTHGATE_ISSUER": "i", "AUTHGATE_AUDIENCE": "a", "AUTHGATE_JWKS_FILE": str(jwks),
            "AUTHGATE_JWKS_URL": "https://i.test/jwks"}  # fmt: skip
    result = run_verifier(env={"PATH": "/usr/bin:/bin", **both})
    assert result.returncode == 2
    assert "AUTHGATE_JWKS_URL and AUTHGATE_JWKS_FILE: give only one" in result.stderr
    missing = run_verifier(
        "--jwks-file",
        str(tmp_path / "absent.json"),
        env={"PATH": "/usr/bin:/bin", "AUTHGATE_ISSUER": "i", "AUTHGATE_AUDIENCE": "a"},
    )
    assert missing.returncode == 2
    assert "absent.json' is not a readable file" in missing.stderr


def test_help_lists_every_option_with_its_environment_variable() -> None:
    result = run_verifier("--help")
    assert result.returncode == 0
    for name in (
        "--redis-url",
        "AUTHGATE_REDIS_URL",
        "--jwks-file",
        "--policy-file",
        "--login-url",
        "--workers",
    ):
        assert name in result.stdout
