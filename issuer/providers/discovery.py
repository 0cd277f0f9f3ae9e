"""Where a provider is: its endpoints, issuer and client authentication methods, from
its profile's table, or by OIDC Discovery (the providers file's `endpoints` win)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .config import ProviderConfig
from .http import call
from .interface import ProviderError
from .profile import Profile

#: Discovery metadata names (OIDC Discovery §3) of our endpoint names.
METADATA_NAMES = {
    "authorize": "authorization_endpoint",
    "token": "token_endpoint",
    "userinfo": "userinfo_endpoint",
    "jwks": "jwks_uri",
}


@dataclass(frozen=True)
class Endpoints:
    urls: Mapping[str, str]
    issuer: str | None
    client_auth: tuple[str, ...]
    #: RFC 9207 §3: the provider says every authorization response carries `iss`.
    iss_always: bool = False


def static(profile: Profile, config: ProviderConfig) -> Endpoints:
    return Endpoints(
        urls={**profile.endpoints, **config.endpoints},
        issuer=config.issuer or profile.issuer,
        client_auth=profile.client_auth,
    )


async def discover(client: httpx.AsyncClient, config: ProviderConfig) -> Endpoints:
    issuer = config.issuer or ""
    status, document = await call(client, "GET", f"{issuer}/.well-known/openid-configuration")
    if status != 200 or not isinstance(document, dict):
        raise ProviderError("provider_unavailable", f"discovery answered {status}")
    if document.get("issuer") != issuer:  # OIDC Discovery §4.3
        raise ProviderError("invalid_response", "discovery issuer does not match")
    urls = {ours: document[theirs] for ours, theirs in METADATA_NAMES.items()
            if isinstance(document.get(theirs), str)}  # fmt: skip
    urls.update(config.endpoints)
    missing = [name for name in ("authorize", "token", "jwks") if name not in urls]
    if missing:
        raise ProviderError("invalid_response", f"discovery has no {', '.join(missing)}")
    methods = _strings(document.get("token_endpoint_auth_methods_supported"))
    return Endpoints(
        urls=urls,
        issuer=issuer,
        # OIDC Discovery §3: the default when the provider does not say.
        client_auth=methods or ("client_secret_basic",),
        iss_always=document.get("authorization_response_iss_parameter_supported") is True,
    )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()
