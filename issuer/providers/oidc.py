"""Any OpenID Connect provider, configured by discovery (Google, Kakao OIDC, Keycloak, …)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from authgate.jwks import KeySet

from . import Identity, ProviderConfig, ProviderError
from .http import call, provider_keys, validate_id_token


class OidcProvider:
    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (fetched once; a failure is retried on the next login)."""
        if self._metadata is None:
            issuer = self.config.issuer or ""
            status, document = await call(
                self._client, "GET", f"{issuer}/.well-known/openid-configuration"
            )
            if status != 200 or not isinstance(document, dict):
                raise ProviderError("provider_unavailable", f"discovery answered {status}")
            if document.get("issuer") != issuer:  # OIDC Discovery §4.3
                raise ProviderError("invalid_response", "discovery issuer does not match")
            document = {**document, **_overrides(self.config)}
            self._metadata = document
            self._keys = provider_keys(document["jwks_uri"])
        return self._metadata

    async def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str
    ) -> str:
        meta = await self.metadata()
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{meta['authorization_endpoint']}?{urlencode(query)}"

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, iss: str | None
    ) -> Identity:
        meta = await self.metadata()
        # RFC 9207: a provider that says it sends `iss` must send ours.
        says_iss = meta.get("authorization_response_iss_parameter_supported")
        if (iss is not None or says_iss) and iss != meta["issuer"]:
            raise ProviderError("invalid_response", "authorization response iss mismatch")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier}  # fmt: skip
        auth = None
        methods = meta.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        if "client_secret_basic" in methods:
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret or "")
        else:
            form.update(
                client_id=self.config.client_id, client_secret=self.config.client_secret or ""
            )
        status, body = await call(
            self._client, "POST", meta["token_endpoint"], data=form, auth=auth
        )
        if status != 200 or not isinstance(body, dict):
            raise _token_error(status, body)
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError("invalid_response", "no ID token in the token response")
        assert self._keys is not None
        claims = await validate_id_token(
            id_token,
            keys=self._keys,
            issuer=meta["issuer"],
            client_id=self.config.client_id,
            nonce=nonce,
        )
        profile = dict(claims)
        if meta.get("userinfo_endpoint") and isinstance(body.get("access_token"), str):
            profile.update(
                await self._userinfo(meta["userinfo_endpoint"], body["access_token"], claims["sub"])
            )
        return Identity(
            provider=self.config.name,
            subject=claims["sub"],
            email=profile.get("email") if isinstance(profile.get("email"), str) else None,
            email_verified=profile.get("email_verified") is True,
            name=profile.get("name") if isinstance(profile.get("name"), str) else None,
        )

    async def _userinfo(self, url: str, access_token: str, sub: str) -> dict[str, Any]:
        status, body = await call(
            self._client, "GET", url, headers={"Authorization": f"Bearer {access_token}"}
        )
        if status != 200 or not isinstance(body, dict):
            raise ProviderError("invalid_response", f"userinfo answered {status}")
        if body.get("sub") != sub:  # OIDC Core §5.3.2: must match the ID token
            raise ProviderError("invalid_response", "userinfo sub differs from the ID token's")
        return body


def _overrides(config: ProviderConfig) -> dict[str, str]:
    names = {"authorize": "authorization_endpoint", "token": "token_endpoint",
             "userinfo": "userinfo_endpoint", "jwks": "jwks_uri"}  # fmt: skip
    return {names[k]: v for k, v in config.endpoints.items() if k in names}


def _token_error(status: int, body: Any) -> ProviderError:
    """RFC 6749 §5.2 error bodies, mapped to our stable codes."""
    error = body.get("error") if isinstance(body, dict) else None
    if error in ("invalid_grant", "invalid_client", "unauthorized_client"):
        return ProviderError("invalid_grant" if error == "invalid_grant" else "invalid_client",
                             f"token endpoint: {error}")  # fmt: skip
    if status >= 500:
        return ProviderError("provider_unavailable", f"token endpoint answered {status}")
    return ProviderError(
        "invalid_response", f"token endpoint answered {status} {error or ''}".strip()
    )
