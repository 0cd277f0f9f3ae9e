"""Identity providers: configuration, the adapter interface, and the registry.

A provider adapter is a small module behind one interface (`Provider`): it builds the
authorization URL and turns a callback's code into an `Identity`. `providers.yml`:

```yaml
providers:
  - name: kakao                  # the URL segment: /login/kakao, /callback/kakao
    type: kakao                  # kakao | oidc | github
    display_name: Kakao
    client_id: 0123456789abcdef
    client_secret: {env: KAKAO_CLIENT_SECRET}   # or {file: /path}, or a plain string
    scopes: [openid, profile_nickname, account_email]
  - name: google
    type: oidc
    issuer: https://accounts.google.com   # discovery: <issuer>/.well-known/openid-configuration
    client_id: ...
    client_secret: {file: /run/secrets/google}
```

`endpoints` (authorize, token, userinfo, emails, jwks) override a provider's documented
URLs; the tests use it to point adapters at local servers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

TYPES = ("kakao", "oidc", "github")
DEFAULT_SCOPES = {
    "kakao": ("openid", "profile_nickname", "account_email"),
    "oidc": ("openid", "email", "profile"),
    "github": ("read:user", "user:email"),
}
ENDPOINT_NAMES = ("authorize", "token", "userinfo", "emails", "jwks")
#: Signature algorithms accepted on providers' ID tokens. RS256 is what Google and
#: Kakao sign with; HMAC (keyed with our client secret) is never accepted.
ID_TOKEN_ALGORITHMS = ("RS256", "ES256", "EdDSA", "PS256")


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    display_name: str
    client_id: str
    client_secret: str | None = field(repr=False)
    scopes: tuple[str, ...]
    issuer: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Identity:
    """Who the provider says the user is. Users are keyed by (provider, subject) only."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class ProviderError(Exception):
    """A login that failed at or because of the provider. `code` is stable across providers:
    access_denied, invalid_grant, invalid_client, redirect_uri_mismatch, invalid_id_token,
    invalid_response, provider_unavailable."""

    def __init__(self, code: str, description: str) -> None:
        self.code = code
        self.description = description
        super().__init__(f"{code}: {description}")


class Provider(Protocol):
    config: ProviderConfig

    async def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str
    ) -> str: ...

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, iss: str | None
    ) -> Identity: ...


class ProvidersError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def load_providers(path: str) -> tuple[ProviderConfig, ...]:
    try:
        with open(path, encoding="utf-8") as fh:
            document = yaml.safe_load(fh)
    except OSError as exc:
        raise ProvidersError([f"{path}: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ProvidersError([f"not valid YAML: {exc}"]) from exc
    if not isinstance(document, dict) or not isinstance(document.get("providers"), list):
        raise ProvidersError(["the file must be a mapping with a list under `providers`"])
    problems: list[str] = []
    configs: list[ProviderConfig] = []
    names: set[str] = set()
    for index, raw in enumerate(document["providers"]):
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str):
            if name in names:
                problems.append(f"providers[{index}].name: {name!r} is used twice")
            names.add(name)
        config = _provider(f"providers[{index}]", raw, problems)
        if config is not None:
            configs.append(config)
    if problems:
        raise ProvidersError(problems)
    return tuple(configs)


def _provider(where: str, raw: Any, problems: list[str]) -> ProviderConfig | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping")
        return None
    start = len(problems)
    known = {
        "name",
        "type",
        "display_name",
        "client_id",
        "client_secret",
        "scopes",
        "issuer",
        "endpoints",
    }
    for key in sorted(set(map(str, raw)) - known):
        problems.append(f"{where}.{key}: unknown key")
    name, kind = raw.get("name"), raw.get("type")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        problems.append(f"{where}.name: required; lower-case letters, digits, - and _")
    if kind not in TYPES:
        problems.append(f"{where}.type: must be one of {', '.join(TYPES)}")
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        problems.append(f"{where}.client_id: required")
    secret = _secret(f"{where}.client_secret", raw.get("client_secret"), problems)
    if secret is None and kind in ("oidc", "github"):
        problems.append(f"{where}.client_secret: required for {kind}")
    scopes = raw.get("scopes", list(DEFAULT_SCOPES.get(str(kind), ())))
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        problems.append(f"{where}.scopes: must be a list of strings")
    issuer = raw.get("issuer")
    if kind == "oidc" and (
        not isinstance(issuer, str) or not issuer.startswith(("https://", "http://"))
    ):
        problems.append(f"{where}.issuer: required for oidc (the issuer URL)")
    endpoints = raw.get("endpoints", {})
    if not isinstance(endpoints, dict) or not all(
        k in ENDPOINT_NAMES and isinstance(v, str) for k, v in endpoints.items()
    ):
        problems.append(f"{where}.endpoints: a mapping of {', '.join(ENDPOINT_NAMES)} to URLs")
    if len(problems) > start:
        return None
    return ProviderConfig(
        name=str(name),
        type=str(kind),
        display_name=str(raw.get("display_name") or str(name).title()),
        client_id=str(client_id),
        client_secret=secret,
        scopes=tuple(scopes),
        issuer=issuer.rstrip("/") if isinstance(issuer, str) else None,
        endpoints=dict(endpoints),
    )


def _secret(where: str, value: Any, problems: list[str]) -> str | None:
    """A secret as a string, `{env: NAME}` or `{file: PATH}`; never echoed in a problem."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((kind, ref),) = value.items()
        if kind == "env" and isinstance(ref, str):
            if os.environ.get(ref):
                return os.environ[ref]
            problems.append(f"{where}: environment variable {ref} is not set")
            return None
        if kind == "file" and isinstance(ref, str):
            try:
                with open(ref, encoding="utf-8") as fh:
                    return fh.read().strip() or None
            except OSError as exc:
                problems.append(f"{where}: cannot read {ref}: {exc.strerror}")
                return None
    problems.append(f"{where}: a string, {{env: NAME}} or {{file: PATH}}")
    return None


def build(config: ProviderConfig, client: Any) -> Provider:
    """The adapter for `config.type`."""
    from .github import GithubProvider
    from .kakao import KakaoProvider
    from .oidc import OidcProvider

    adapters: dict[str, Callable[[ProviderConfig, Any], Provider]] = {
        "kakao": KakaoProvider, "oidc": OidcProvider, "github": GithubProvider,
    }  # fmt: skip
    return adapters[config.type](config, client)
