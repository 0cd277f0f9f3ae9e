"""GitHub (OAuth app). The user is GitHub's numeric `id`; the email is the verified
primary one from `/user/emails`, never an unverified or merely public address.

GitHub answers token errors with status 200 and an `error` field
(`bad_verification_code`, `incorrect_client_credentials`, `redirect_uri_mismatch`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from . import Identity, ProviderConfig, ProviderError
from .http import call

ENDPOINTS = {
    "authorize": "https://github.com/login/oauth/authorize",
    "token": "https://github.com/login/oauth/access_token",
    "userinfo": "https://api.github.com/user",
    "emails": "https://api.github.com/user/emails",
}
ERRORS = {
    "bad_verification_code": "invalid_grant",
    "incorrect_client_credentials": "invalid_client",
    "redirect_uri_mismatch": "redirect_uri_mismatch",
}
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GithubProvider:
    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self._client = client
        self._urls = {**ENDPOINTS, **config.endpoints}

    async def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str
    ) -> str:
        query = {
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "allow_signup": "true",
        }
        return f"{self._urls['authorize']}?{urlencode(query)}"

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, iss: str | None
    ) -> Identity:
        form = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret or "",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        status, body = await call(
            self._client,
            "POST",
            self._urls["token"],
            data=form,
            headers={"Accept": "application/json"},
        )
        if (
            not isinstance(body, dict)
            or "error" in body
            or not isinstance(body.get("access_token"), str)
        ):
            error = body.get("error") if isinstance(body, dict) else None
            if error in ERRORS:
                raise ProviderError(ERRORS[error], f"GitHub: {error}")
            kind = "provider_unavailable" if status >= 500 else "invalid_response"
            raise ProviderError(
                kind, f"GitHub token endpoint answered {status} {error or ''}".strip()
            )
        auth = {**API_HEADERS, "Authorization": f"Bearer {body['access_token']}"}
        user = await self._get(self._urls["userinfo"], auth)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise ProviderError("invalid_response", "GitHub /user has no numeric id")
        emails = await self._get(self._urls["emails"], auth)
        email = None
        if isinstance(emails, list):
            email = next(
                (e["email"] for e in emails if isinstance(e, dict) and e.get("primary") is True
                 and e.get("verified") is True and isinstance(e.get("email"), str)),
                None,
            )  # fmt: skip
        name = user.get("name") or user.get("login")
        return Identity(
            provider=self.config.name,
            subject=str(user["id"]),
            email=email,
            email_verified=email is not None,
            name=name if isinstance(name, str) else None,
        )

    async def _get(self, url: str, headers: dict[str, str]) -> Any:
        status, body = await call(self._client, "GET", url, headers=headers)
        if status != 200:
            kind = "provider_unavailable" if status >= 500 else "invalid_response"
            message = body.get("message") if isinstance(body, dict) else None
            raise ProviderError(kind, f"GitHub {url} answered {status} {message or ''}".strip())
        return body
