"""The providers' one flow, driven in-process against the fake Kakao and GitHub servers
and a real OpenID Provider: the same calls for every type, only the data differs; and the
one secret syntax of the providers file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authgate.config import ConfigError
from issuer.providers import (
    Identity,
    OAuthProvider,
    ProviderConfig,
    ProviderError,
    Providers,
    ProvidersError,
    load_providers,
)
from issuer.providers.flow import client_authentication
from issuer.settings import load_settings

from ..fake_providers import FakeProvider
from ..identity import CLIENT_ID as OP_CLIENT
from ..identity import OpenIdProvider, sign_in_at_provider, social_providers_yaml
from ..social import CLIENT_ID, GITHUB_USER, KAKAO_USER, SECRET

REDIRECT = "http://127.0.0.1:9/callback/"  # never visited: the authorize step stops there


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    server = FakeProvider(CLIENT_ID, SECRET)
    yield server
    server.close()


@pytest.fixture(scope="module")
def op(logs: Path) -> Iterator[OpenIdProvider]:
    server = OpenIdProvider(f"{REDIRECT}test", logs)
    yield server
    server.stop()


def configs(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> dict[str, ProviderConfig]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "providers.yml").write_text(text)
    return {c.name: c for c in load_providers(str(tmp_path / "providers.yml"))}


def social_configs(
    fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, ProviderConfig]:
    text = social_providers_yaml({k: fake.endpoints(k) for k in ("kakao", "github")}, CLIENT_ID)
    return configs(text, tmp_path, monkeypatch, FAKE_PROVIDER_SECRET=SECRET)


def op_config(
    op: OpenIdProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ProviderConfig:
    text = (
        "providers:\n"
        f"  - {{name: test, type: oidc, issuer: '{op.issuer}', client_id: {OP_CLIENT},"
        " client_secret: {env: TEST_OP_SECRET}}\n"
    )
    return configs(text, tmp_path, monkeypatch, TEST_OP_SECRET="authgate-test-secret")["test"]


#: The authorize step, played for an authorization URL: (code, the callback's `iss`).
Authorize = Callable[[str], tuple[str, str | None]]


def at_fake(fake: FakeProvider, user: dict[str, Any]) -> Authorize:
    return lambda url: (fake.grant(url, user), None)


def at_op(login: str) -> Authorize:
    def authorize(url: str) -> tuple[str, str | None]:
        with httpx.Client(timeout=15, follow_redirects=True) as browser:
            handoff = sign_in_at_provider(browser, browser.get(url), login, stop_at=REDIRECT)
        query = parse_qs(urlsplit(handoff.headers["location"]).query)
        return query["code"][0], query.get("iss", [None])[0]

    return authorize


async def sign_in(
    provider: OAuthProvider,
    authorize: Authorize,
    *,
    iss: Callable[[str | None], str | None] = lambda i: i,
) -> tuple[str, Identity]:
    """The login flow as issuer/login.py runs it; (the authorization URL, the identity)."""
    state, verifier, nonce = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    url = await provider.authorization_url(
        redirect_uri=REDIRECT + provider.config.name, state=state,
        code_challenge=challenge.rstrip(b"=").decode(), nonce=nonce,
    )  # fmt: skip
    code, sent_iss = await asyncio.to_thread(authorize, url)
    identity = await provider.complete(
        code=code, redirect_uri=REDIRECT + provider.config.name, code_verifier=verifier,
        nonce=nonce, iss=iss(sent_iss),
    )  # fmt: skip
    return url, identity


def run(configs: list[ProviderConfig], test: Callable[[Providers], Awaitable[None]]) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            providers = Providers(configs, client)
            try:
                await test(providers)
            finally:
                await providers.aclose()

    asyncio.run(main())


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.mark.parametrize("kind", ["kakao", "github", "oidc"])
def test_every_type_runs_the_one_flow(
    kind: str,
    fake: FakeProvider,
    op: OpenIdProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same calls, same checks (state, PKCE S256, the code exchange, the identity read
    from the answers); the data says what differs."""
    if kind == "oidc":
        config, authorize = op_config(op, tmp_path, monkeypatch), at_op("erin")
        expected = Identity("test", "erin", "erin@example.test", True, "User erin")
    else:
        config = social_configs(fake, tmp_path, monkeypatch)[kind]
        user = KAKAO_USER if kind == "kakao" else GITHUB_USER
        authorize = at_fake(fake, user)
        expected = {
            "kakao": Identity("kakao", "4061237812", "gildong@kakao.test", True, "홍길동"),
            "github": Identity("github", "583231", "octocat@github.test", True, "The Octocat"),
        }[kind]
    seen: list[tuple[str, Identity]] = []

    async def test(providers: Providers) -> None:
        provider = providers[config.name]
        assert isinstance(provider, OAuthProvider)
        seen.append(await sign_in(provider, authorize))

    run([config], test)
    url, identity = seen[0]
    assert identity == expected
    sent = query(url)
    assert sent["code_challenge_method"] == "S256" and sent["response_type"] == "code"
    assert sent["scope"] == {"kakao": "openid,profile_nickname,account_email",
                             "github": "read:user user:email",
                             "oidc": "openid email profile"}[kind]  # fmt: skip
    assert ("nonce" in sent) == (kind != "github")  # a nonce only where ID tokens come


def test_rfc9207_iss_of_another_issuer_is_refused_before_the_code_is_spent(
    fake: FakeProvider, op: OpenIdProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kakao = social_configs(fake, tmp_path, monkeypatch)["kakao"]
    test_op = op_config(op, tmp_path, monkeypatch)

    async def test(providers: Providers) -> None:
        for name, authorize in (("kakao", at_fake(fake, KAKAO_USER)), ("test", at_op("mallory"))):
            provider = providers[name]
            assert isinstance(provider, OAuthProvider)
            calls = len(fake.state.requests)
            with pytest.raises(ProviderError) as refused:
                await sign_in(provider, authorize, iss=lambda _: "https://evil.test")
            assert refused.value.code == "invalid_response"
            assert not any("/token" in r[1] for r in fake.state.requests[calls:])
        # The real OP says it sends `iss` (discovery): a callback without one is refused.
        provider = providers["test"]
        assert isinstance(provider, OAuthProvider)
        with pytest.raises(ProviderError) as missing:
            await sign_in(provider, at_op("mallory"), iss=lambda _: None)
        assert missing.value.code == "invalid_response"

    run([kakao, test_op], test)


def test_kakao_without_a_secret_is_a_public_client(
    fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client authentication is data: with no secret, `none` (client_id in the body,
    no secret anywhere), which the fake Kakao refuses like Kakao does (KOE010)."""
    endpoints = "".join(f"      {k}: {v}\n" for k, v in fake.endpoints("kakao").items())
    text = f"providers:\n  - name: kakao\n    type: kakao\n    client_id: {CLIENT_ID}\n    endpoints:\n{endpoints}"
    config = configs(text, tmp_path, monkeypatch)["kakao"]
    assert config.client_secret is None

    async def test(providers: Providers) -> None:
        provider = providers["kakao"]
        assert isinstance(provider, OAuthProvider)
        with pytest.raises(ProviderError) as refused:
            await sign_in(provider, at_fake(fake, KAKAO_USER))
        assert refused.value.code == "invalid_client"

    run([config], test)
    _, path, headers, body = fake.state.requests[-1]
    form = parse_qs(body)
    assert path == "/kakao/oauth/token" and form["client_id"] == [CLIENT_ID]
    assert "client_secret" not in form and "authorization" not in {h.lower() for h in headers}


def test_client_authentication_is_chosen_from_what_the_provider_takes() -> None:
    assert client_authentication(("client_secret_basic", "client_secret_post"), "s") == (
        "client_secret_basic"
    )
    assert client_authentication(("client_secret_post",), "s") == "client_secret_post"
    assert client_authentication(("private_key_jwt", "client_secret_post"), "s") == (
        "client_secret_post"
    )
    assert client_authentication(("client_secret_basic",), None) == "none"


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("kakao", (200, {"token_type": "bearer"})),  # no access_token
        ("github", (200, {"access_token": 7})),
        ("kakao", (200, {"access_token": "at", "error": "invalid_request"})),
    ],
)
def test_a_token_answer_must_carry_an_access_token_and_no_error(
    kind: str,
    answer: tuple[int, dict[str, Any]],
    fake: FakeProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = social_configs(fake, tmp_path, monkeypatch)[kind]

    async def test(providers: Providers) -> None:
        provider = providers[kind]
        assert isinstance(provider, OAuthProvider)
        fake.state.token_failure = answer
        with pytest.raises(ProviderError) as refused:
            await sign_in(provider, at_fake(fake, KAKAO_USER if kind == "kakao" else GITHUB_USER))
        assert refused.value.code == "invalid_response"

    run([config], test)


def test_the_registry_closes_the_key_sets_it_opened(
    fake: FakeProvider, op: OpenIdProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kakao = social_configs(fake, tmp_path, monkeypatch)["kakao"]
    test_op = op_config(op, tmp_path, monkeypatch)
    opened: list[OAuthProvider] = []

    async def test(providers: Providers) -> None:
        for name, authorize in (("kakao", at_fake(fake, KAKAO_USER)), ("test", at_op("kim"))):
            provider = providers[name]
            assert isinstance(provider, OAuthProvider)
            await sign_in(provider, authorize)
            assert provider.keys is not None
            opened.append(provider)

    run([kakao, test_op], test)  # closes the registry at the end, as the app's shutdown does
    for provider in opened:
        assert provider.keys is not None
        client = provider.keys._client  # the KeySet's own HTTP client
        assert client is not None and client.is_closed


# The providers file's one secret syntax.


def problems_of(text: str, tmp_path: Path) -> list[str]:
    (tmp_path / "providers.yml").write_text(text)
    with pytest.raises(ProvidersError) as failed:
        load_providers(str(tmp_path / "providers.yml"))
    return failed.value.problems


def test_secrets_come_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text("from-a-file\n")
    text = (
        "providers:\n"
        "  - {name: a, type: github, client_id: c, client_secret: {env: A_SECRET}}\n"
        f"  - {{name: b, type: github, client_id: c, client_secret: {{file: {tmp_path / 'secret'}}}}}\n"
    )
    found = configs(text, tmp_path, monkeypatch, A_SECRET=" from-env ")
    assert found["a"].client_secret == "from-env" and found["b"].client_secret == "from-a-file"
    assert "from-" not in repr(found)


def test_every_other_way_of_writing_a_secret_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    text = (
        "providers:\n"
        "  - {name: inline, type: github, client_id: c, client_secret: s3cr3t-inline}\n"
        "  - {name: prefixed, type: kakao, client_id: c, client_secret: 'env:KAKAO_SECRET'}\n"
        "  - {name: vault, type: github, client_id: c, client_secret: {vault: kv/github}}\n"
        "  - {name: both, type: github, client_id: c, client_secret: {env: X, file: /y}}\n"
        "  - {name: unset, type: github, client_id: c, client_secret: {env: NOT_SET_ANYWHERE_9}}\n"
        "  - {name: missing, type: github, client_id: c, client_secret: {file: /no/such/secret}}\n"
        f"  - {{name: empty, type: github, client_id: c, client_secret: {{file: {tmp_path / 'empty'}}}}}\n"
        "  - {name: absent, type: github, client_id: c}\n"
    )
    syntax = "write {env: NAME} or {file: PATH}"
    assert problems_of(text, tmp_path) == [
        f"providers[0].client_secret: provider 'inline' gives its secret inline; {syntax}",
        f"providers[1].client_secret: provider 'prefixed' gives its secret inline; {syntax}",
        "providers[2].client_secret: provider 'vault': a secret is written {env: NAME} or {file: PATH}",
        "providers[3].client_secret: provider 'both': a secret is written {env: NAME} or {file: PATH}",
        "providers[4].client_secret: environment variable NOT_SET_ANYWHERE_9 is not set (provider 'unset')",
        "providers[5].client_secret: cannot read /no/such/secret: No such file or directory (provider 'missing')",
        f"providers[6].client_secret: file {tmp_path / 'empty'} is empty (provider 'empty')",
        "providers[7].client_secret: required for github ({env: NAME} or {file: PATH})",
    ]  # fmt: skip


def test_the_settings_loader_reports_the_providers_problems_with_its_own(tmp_path: Path) -> None:
    path = tmp_path / "providers.yml"
    path.write_text(
        "providers:\n  - {name: g, type: github, client_id: c, client_secret: hunter2}\n"
    )
    with pytest.raises(ConfigError) as failed:
        load_settings(["--providers-file", str(path), "--access-token-ttl", "5"], environ={})
    text = "\n".join(failed.value.problems)
    assert f"AUTHGATE_PROVIDERS_FILE {path}: providers[0].client_secret: provider 'g'" in text
    assert "AUTHGATE_ACCESS_TOKEN_TTL" in text and "hunter2" not in text
