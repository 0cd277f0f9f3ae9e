"""Identity providers: one interface (`Provider`), one flow (flow.py) and, per type, a
table of data (`Profile`: kakao.py, oidc.py, github.py). `providers.yml`:

```yaml
providers:
  - name: kakao                  # the URL segment: /login/kakao, /callback/kakao
    type: kakao                  # kakao | oidc | github
    display_name: Kakao
    client_id: 0123456789abcdef
    client_secret: {env: KAKAO_CLIENT_SECRET}   # or {file: /path}; never the value itself
    scopes: [openid, profile_nickname, account_email]
  - name: google
    type: oidc
    issuer: https://accounts.google.com   # discovery: <issuer>/.well-known/openid-configuration
    client_id: ...
    client_secret: {file: /run/secrets/google}
```

`endpoints` (authorize, token, userinfo, emails, jwks) override a provider's documented
URLs; the tests use it to point providers at local servers.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from .config import ProviderConfig, ProvidersError, load_providers
from .flow import OAuthProvider
from .interface import Identity, Provider, ProviderError
from .kinds import PROFILES

__all__ = [
    "Identity",
    "OAuthProvider",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "Providers",
    "ProvidersError",
    "build",
    "load_providers",
]


def build(config: ProviderConfig, client: httpx.AsyncClient) -> OAuthProvider:
    """The provider `config` describes: the one flow, with its type's data."""
    return OAuthProvider(config, PROFILES[config.type], client)


class Providers(dict[str, Provider]):
    """The configured providers by name. It owns what they hold open (their JWKS key
    sets): `aclose()` at shutdown."""

    def __init__(self, configs: Iterable[ProviderConfig], client: httpx.AsyncClient) -> None:
        self._built = [build(c, client) for c in configs]
        super().__init__((p.config.name, p) for p in self._built)

    async def aclose(self) -> None:
        for provider in self._built:
            await provider.aclose()
