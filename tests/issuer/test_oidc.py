"""A full authorization-code login against a real OpenID Provider, then through nginx.

The stack: oidc-provider (npm) ⇄ authgate-issuer ⇄ Redis ⇄ authgate-verifier ⇄ nginx
(the project's example config) ⇄ an echo upstream. The browser is an httpx client with a
cookie jar, following redirects like a browser does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from authgate import redis_client
from stack.nginx import NGINX_DIR, Nginx
from stack.processes import free_port

from ..harness import EchoUpstream, VerifierProcess, verifier_env
from ..identity import CLIENT_ID, CLIENT_SECRET, IssuerProcess, OpenIdProvider, sign_in_at_provider


@dataclass
class Stack:
    op: OpenIdProvider
    issuer: IssuerProcess
    verifier: VerifierProcess
    nginx: str


@pytest.fixture(scope="module")
def stack(
    redis_url: str,
    amqp_url: str,
    upstream: EchoUpstream,
    logs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("issuer")
    issuer_port, nginx_port = free_port(), free_port()
    op = OpenIdProvider(f"http://127.0.0.1:{issuer_port}/callback/test", logs)
    providers = work / "providers.yml"
    providers.write_text(
        "providers:\n"
        f"  - {{name: test, type: oidc, display_name: Test OP, issuer: '{op.issuer}',"
        f" client_id: {CLIENT_ID}, client_secret: {{env: TEST_OP_SECRET}}, scopes: [openid, email, profile]}}\n"
    )
    issuer = IssuerProcess(
        {
            "AUTHGATE_REDIS_URL": redis_url,
            "AUTHGATE_KEYS_DIR": str(work / "keys"),
            "AUTHGATE_PROVIDERS_FILE": str(providers),
            "AUTHGATE_RETURN_ORIGINS": f"http://127.0.0.1:{nginx_port}",
            "TEST_OP_SECRET": CLIENT_SECRET,
        },
        logs,
        amqp_url=amqp_url,
        port=issuer_port,
    )
    verifier = VerifierProcess(
        verifier_env(f"{issuer.url}/.well-known/jwks.json", redis_url, AUTHGATE_ISSUER=issuer.url,
                     AUTHGATE_LOGIN_URL=f"{issuer.url}/login"),
        logs,
    )  # fmt: skip
    verifier.wait_ready()
    server = Nginx(
        work / "nginx",
        NGINX_DIR / "templates" / "example.conf.template",
        {
            "AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{nginx_port}",
            "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{verifier.port}",
            "AUTHGATE_UPSTREAM_ADDR": f"127.0.0.1:{upstream.port}",
            "AUTHGATE_DEMO_UPSTREAM_LISTEN": f"127.0.0.1:{free_port()}",
        },
    )
    server.start(nginx_port)
    yield Stack(op, issuer, verifier, f"http://127.0.0.1:{nginx_port}")
    server.stop()
    verifier.stop()
    issuer.stop()
    op.stop()


def browser() -> httpx.Client:
    return httpx.Client(timeout=15, follow_redirects=True)


def log_in(
    stack: Stack, http: httpx.Client, login: str, path: str = "/docs/1", stop_at: str | None = None
) -> httpx.Response:
    """Visit a protected page, get sent to the issuer, pick the provider, sign in there."""
    first = http.get(stack.nginx + path, follow_redirects=False)
    assert first.status_code == 302
    login_page = http.get(first.headers["location"])
    assert login_page.status_code == 200 and "Continue with Test OP" in login_page.text
    rd = parse_qs(urlsplit(first.headers["location"]).query)["rd"][0]
    at_provider = http.get(f"{stack.issuer.url}/login/test?{urlencode({'rd': rd})}")
    return sign_in_at_provider(http, at_provider, login, stop_at)


def test_login_then_protected_request_then_logout(stack: Stack) -> None:
    with browser() as http:
        landed = log_in(stack, http, "alice")
        # Back where the user started, through nginx, as the user the issuer knows.
        assert landed.status_code == 200, landed.text[:300]
        assert urlsplit(str(landed.url)).path == "/docs/1"
        me = http.get(f"{stack.issuer.url}/me").json()
        assert me["email"] == "alice@example.test" and me["name"] == "User alice"
        headers = dict(landed.json()["headers"])
        assert headers["x-auth-user"] == me["id"]
        assert headers["x-auth-email"] == "alice@example.test"
        cookie = http.cookies.get("authgate_session")
        assert cookie
        # Logout ends the session everywhere; the old cookie is refused from then on.
        refused = http.post(f"{stack.issuer.url}/logout")
        assert refused.status_code == 403  # no CSRF token: refused
        out = http.post(f"{stack.issuer.url}/logout", headers={"X-CSRF-Token": me["csrf_token"]})
        assert out.status_code == 204
    with httpx.Client(cookies={"authgate_session": cookie}) as replay:
        assert replay.get(stack.nginx + "/docs/1").status_code == 302
        assert replay.get(stack.nginx + "/api/items").status_code == 401


def test_second_login_of_the_same_subject_is_the_same_user(stack: Stack) -> None:
    ids = []
    for _ in range(2):
        with browser() as http:
            assert log_in(stack, http, "bob").status_code == 200
            ids.append(http.get(f"{stack.issuer.url}/me").json()["id"])
    assert ids[0] == ids[1]


def test_authorization_response_iss_must_be_the_providers(stack: Stack) -> None:
    """RFC 9207: oidc-provider sends `iss` with the code; a response claiming another
    issuer (a mix-up attack) is refused."""
    with browser() as http:
        handoff = log_in(stack, http, "carol", stop_at=f"{stack.issuer.url}/callback/")
        callback = handoff.headers["location"]
        assert parse_qs(urlsplit(callback).query)["iss"] == [stack.op.issuer]
        mixed_up = callback.replace("iss=http%3A%2F%2F127.0.0.1", "iss=https%3A%2F%2Fevil.test")
        assert mixed_up != callback
        refused = http.get(mixed_up, follow_redirects=False)
        assert refused.status_code == 400 and "invalid_response" in refused.text
        assert "authgate_session" not in http.cookies


def test_missing_pkce_verifier_is_refused_by_the_provider(stack: Stack, redis_url: str) -> None:
    client = redis_client.connect_blocking(redis_url)
    with browser() as http:
        handoff = log_in(stack, http, "dave", stop_at=f"{stack.issuer.url}/callback/")
        state = parse_qs(urlsplit(handoff.headers["location"]).query)["state"][0]
        key = f"authgate:login-state:{state}"
        record = json.loads(client.get(key) or "{}")
        client.set(key, json.dumps({**record, "verifier": ""}), keepttl=True)
        refused = http.get(handoff.headers["location"], follow_redirects=False)
        assert refused.status_code == 400 and "invalid_grant" in refused.text
    client.close()
