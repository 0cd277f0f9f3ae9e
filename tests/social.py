"""The social-login test stack: the fake Kakao/GitHub server and an issuer using it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from authgate import redis_client

from .fake_providers import FakeProvider
from .identity import IssuerProcess, social_providers_yaml

CLIENT_ID, SECRET = "fake-client-id", "fake-client-secret"
APP = "http://127.0.0.1:8080"

KAKAO_USER: dict[str, Any] = {
    "id": 4061237812,
    "connected_at": "2026-11-21T01:02:03Z",
    "properties": {"nickname": "홍길동"},
    "kakao_account": {
        "profile_nickname_needs_agreement": False,
        "profile": {"nickname": "홍길동", "is_default_nickname": False},
        "email_needs_agreement": False,
        "is_email_valid": True,
        "is_email_verified": True,
        "email": "gildong@kakao.test",
    },
}
GITHUB_USER: dict[str, Any] = {
    "user": {"login": "octocat", "id": 583231, "name": "The Octocat", "email": None},
    "emails": [
        {"email": "old@github.test", "primary": False, "verified": True, "visibility": None},
        {
            "email": "octocat@github.test",
            "primary": True,
            "verified": True,
            "visibility": "private",
        },
    ],
}


@dataclass
class Social:
    fake: FakeProvider
    issuer: IssuerProcess
    redis: redis.Redis


@pytest.fixture(scope="module")
def social(
    redis_url: str, amqp_url: str, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Social]:
    stack = social_stack(redis_url, amqp_url, logs, tmp_path_factory.mktemp("social"))
    yield stack
    stack.issuer.stop()
    stack.fake.close()


def social_stack(redis_url: str, amqp_url: str, logs: Path, work: Path, **env: str) -> Social:
    """The fake providers and an issuer using them, on `redis_url` (any topology), with
    `env` over its settings; the caller stops both."""
    fake = FakeProvider(CLIENT_ID, SECRET)
    providers = work / "providers.yml"
    providers.write_text(
        social_providers_yaml({k: fake.endpoints(k) for k in ("kakao", "github")}, CLIENT_ID)
    )
    issuer = IssuerProcess(
        {"AUTHGATE_REDIS_URL": redis_url, "AUTHGATE_KEYS_DIR": str(work / "keys"),
         "AUTHGATE_PROVIDERS_FILE": str(providers), "AUTHGATE_RETURN_ORIGINS": APP,
         "AUTHGATE_TRUSTED_PROXIES": "127.0.0.0/8", "AUTHGATE_LOCAL_ACCOUNTS": "true",
         "FAKE_PROVIDER_SECRET": SECRET, **env},
        logs,
        amqp_url=amqp_url,
    )  # fmt: skip
    return Social(fake, issuer, redis_client.connect_blocking(redis_url))


def browser() -> httpx.Client:
    """A browser of its own address (the issuer trusts X-Forwarded-For from loopback)."""
    ip = f"10.{secrets.randbelow(255)}.{secrets.randbelow(255)}.{secrets.randbelow(254) + 1}"
    return httpx.Client(timeout=15, follow_redirects=False, headers={"X-Forwarded-For": ip})


def start(
    social: Social, http: httpx.Client, provider: str, rd: str = f"{APP}/home"
) -> tuple[str, str]:
    """Go to /login/{provider}; (the provider URL the issuer redirected to, its state)."""
    response = http.get(f"{social.issuer.url}/login/{provider}", params={"rd": rd})
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return location, parse_qs(urlsplit(location).query)["state"][0]


def login(
    social: Social, http: httpx.Client, provider: str, user: dict[str, Any], rd: str = f"{APP}/home"
) -> httpx.Response:
    location, state = start(social, http, provider, rd)
    code = social.fake.grant(location, user)
    return http.get(
        f"{social.issuer.url}/callback/{provider}", params={"code": code, "state": state}
    )


def me(social: Social, http: httpx.Client) -> dict[str, Any]:
    response = http.get(f"{social.issuer.url}/me")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
