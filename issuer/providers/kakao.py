"""Kakao Login (REST API), with Kakao's OIDC ID token when `openid` is among the scopes.

Endpoints as Kakao documents them: authorize at kauth.kakao.com/oauth/authorize, token at
kauth.kakao.com/oauth/token (form body, client secret in the body when the app has one,
PKCE `code_verifier`), profile at kapi.kakao.com/v2/user/me. The user is Kakao's numeric
`id`. Token errors carry a Kakao `error_code` (KOE…), mapped to our stable codes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from . import Identity, ProviderConfig, ProviderError
from .http import call, provider_keys, validate_id_token

ISSUER = "https://kauth.kakao.com"
ENDPOINTS = {
    "authorize": "https://kauth.kakao.com/oauth/authorize",
    "token": "https://kauth.kakao.com/oauth/token",
    "userinfo": "https://kapi.kakao.com/v2/user/me",
    "jwks": "https://kauth.kakao.com/.well-known/jwks.json",
}
#: Kakao's token-endpoint error codes (KOE…) that have a stable meaning of ours.
KOE_CODES = {
    "KOE320": "invalid_grant",  # authorization code not found, expired or used
    "KOE303": "redirect_uri_mismatch",
    "KOE010": "invalid_client",  # bad client secret
    "KOE101": "invalid_client",  # unknown app key
}


class KakaoProvider:
    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._urls = {**ENDPOINTS, **config.endpoints}
        self._keys = provider_keys(self._urls["jwks"])
        self._issuer = config.issuer or ISSUER

    async def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str
    ) -> str:
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": ",".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self._urls['authorize']}?{urlencode(query)}"

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, iss: str | None
    ) -> Identity:
        form = {
            "grant_type": "authorization_code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "code": code,
            "code_verifier": code_verifier,
        }
        if self.config.client_secret:
            form["client_secret"] = self.config.client_secret
        status, body = await call(self._client, "POST", self._urls["token"], data=form)
        if (
            status != 200
            or not isinstance(body, dict)
            or not isinstance(body.get("access_token"), str)
        ):
            raise _token_error(status, body)
        subject_from_id_token = None
        if isinstance(body.get("id_token"), str):
            claims = await validate_id_token(
                body["id_token"], keys=self._keys, issuer=self._issuer,
                client_id=self.config.client_id, nonce=nonce,
            )  # fmt: skip
            subject_from_id_token = claims["sub"]
        elif "openid" in self.config.scopes:
            raise ProviderError("invalid_response", "openid was asked for but no ID token came")
        me = await self._me(body["access_token"])
        subject = str(me["id"])
        if subject_from_id_token is not None and subject_from_id_token != subject:
            raise ProviderError("invalid_response", "ID token and profile disagree on the user")
        account = _mapping(me.get("kakao_account"))
        profile = _mapping(account.get("profile"))
        properties = _mapping(me.get("properties"))
        email = account.get("email") if isinstance(account.get("email"), str) else None
        verified = (
            account.get("is_email_valid") is True and account.get("is_email_verified") is True
        )
        name = profile.get("nickname") or properties.get("nickname")
        return Identity(
            provider=self.config.name,
            subject=subject,
            email=email,
            email_verified=email is not None and verified,
            name=name if isinstance(name, str) else None,
        )

    async def _me(self, access_token: str) -> dict[str, Any]:
        status, body = await call(
            self._client, "GET", self._urls["userinfo"],
            headers={"Authorization": f"Bearer {access_token}"},
        )  # fmt: skip
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("id"), int):
            # Kakao API errors: {"msg": "...", "code": -401}
            detail = body.get("code") if isinstance(body, dict) else None
            kind = "provider_unavailable" if status >= 500 else "invalid_response"
            raise ProviderError(kind, f"user/me answered {status} (code {detail})")
        return body


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _token_error(status: int, body: Any) -> ProviderError:
    body = body if isinstance(body, dict) else {}
    koe = body.get("error_code")
    if koe in KOE_CODES:
        return ProviderError(KOE_CODES[koe], f"Kakao {koe}: {body.get('error', '')}")
    if status >= 500:
        return ProviderError("provider_unavailable", f"Kakao token endpoint answered {status}")
    return ProviderError(
        "invalid_response", f"Kakao token endpoint: {body.get('error', status)} {koe or ''}".strip()
    )
