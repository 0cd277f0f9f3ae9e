"""The one authorization-code flow every provider runs, its differences read from its
`Profile`: the authorization URL (state, PKCE S256, nonce where ID tokens come), the
RFC 9207 `iss` check, the code exchange with the client authentication the provider
takes, the ID token, userinfo, and the identity read from those answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from authgate.jwks import KeySet

from .config import ProviderConfig
from .discovery import Endpoints, discover, static
from .http import call, unavailable_or_invalid
from .id_tokens import provider_keys, validate_id_token
from .interface import Identity, ProviderError
from .profile import ClientAuth, Profile, pick


class OAuthProvider:
    def __init__(
        self,
        config: ProviderConfig,
        profile: Profile,
        client: httpx.AsyncClient,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.profile = profile
        self._client = client
        self._now = now
        self._endpoints = None if profile.discovery else static(profile, config)
        #: The provider's JWKS, made on the first ID token; closed by `aclose`.
        self.keys: KeySet | None = None

    async def endpoints(self) -> Endpoints:
        """Where the provider is (discovered once; a failure is retried on the next login)."""
        if self._endpoints is None:
            self._endpoints = await discover(self._client, self.config)
        return self._endpoints

    async def aclose(self) -> None:
        if self.keys is not None:
            await self.keys.close()

    async def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str
    ) -> str:
        where = await self.endpoints()
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.profile.scope_separator.join(self.config.scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            **self.profile.authorize_params,
        }
        if self.profile.openid != "never":
            query["nonce"] = nonce
        return f"{where.urls['authorize']}?{urlencode(query)}"

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, iss: str | None
    ) -> Identity:
        where = await self.endpoints()
        # RFC 9207 §2.4: an `iss` on the callback (or one the provider promises) must be
        # the provider's own: a response from another authorization server is a mix-up.
        checked = where.issuer is not None and (iss is not None or where.iss_always)
        if checked and iss != where.issuer:
            raise ProviderError("invalid_response", "authorization response iss mismatch")
        tokens = await self._exchange(where, code, redirect_uri, code_verifier)
        claims = await self._id_token(where, tokens, nonce)
        return await self._identity(where, tokens["access_token"], claims)

    async def _exchange(
        self, where: Endpoints, code: str, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": code_verifier}  # fmt: skip
        auth = None
        method = client_authentication(where.client_auth, self.config.client_secret)
        if method == "client_secret_basic":
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret or "")
        else:  # RFC 6749 §2.3.1 (post), §4.1.3 (a public client names itself)
            form["client_id"] = self.config.client_id
            if method == "client_secret_post":
                form["client_secret"] = self.config.client_secret or ""
        status, body = await call(
            self._client, "POST", where.urls["token"], data=form, auth=auth,
            headers={"Accept": "application/json"},
        )  # fmt: skip
        # GitHub answers errors with 200 and an `error`: an error field is an error.
        if (
            status != 200
            or not isinstance(body, dict)
            or "error" in body
            or not isinstance(body.get("access_token"), str)
        ):
            code_ = self.profile.token_error(body)
            error = body.get("error") if isinstance(body, dict) else None
            detail = f"{self.profile.type} token endpoint answered {status} {error or ''}".strip()
            raise ProviderError(code_ or unavailable_or_invalid(status), detail)
        return body

    async def _id_token(
        self, where: Endpoints, tokens: dict[str, Any], nonce: str
    ) -> dict[str, Any] | None:
        """The ID token's claims (None when none came and none was needed)."""
        rule = self.profile.openid
        id_token = tokens.get("id_token")
        if rule == "never":
            return None
        if not isinstance(id_token, str):
            if rule == "always" or "openid" in self.config.scopes:
                raise ProviderError("invalid_response", "no ID token in the token response")
            return None
        if self.keys is None:
            self.keys = provider_keys(where.urls["jwks"])
        return await validate_id_token(
            id_token, keys=self.keys, issuer=where.issuer or "", client_id=self.config.client_id,
            nonce=nonce, now=self._now,
        )  # fmt: skip

    async def _identity(
        self, where: Endpoints, access_token: str, claims: dict[str, Any] | None
    ) -> Identity:
        shape = self.profile.claims
        headers = {**self.profile.api_headers, "Authorization": f"Bearer {access_token}"}
        document: dict[str, Any] = dict(claims or {})
        subject = claims["sub"] if claims is not None else None
        if "userinfo" in where.urls:
            userinfo = await self._get(where.urls["userinfo"], headers)
            if not isinstance(userinfo, dict):
                raise ProviderError("invalid_response", "userinfo is not a JSON object")
            found = pick(userinfo, shape.subject)
            if not isinstance(found, shape.subject_type) or isinstance(found, bool):
                raise ProviderError("invalid_response", "userinfo names no user")
            # OIDC Core §5.3.2: userinfo must be about the ID token's user.
            if subject is not None and str(found) != subject:
                raise ProviderError(
                    "invalid_response", "ID token and userinfo disagree on the user"
                )
            subject = str(found)
            document.update(userinfo)
        if not subject:
            raise ProviderError("invalid_response", "no user in the provider's answers")
        email = pick(document, shape.email) if shape.email else None
        verified = all(pick(document, path) is True for path in shape.email_verified)
        if shape.email_list is not None:
            email, verified = _verified_primary(
                await self._get(where.urls[shape.email_list], headers)
            )
        email = email if isinstance(email, str) and email else None
        names = (pick(document, path) for path in shape.names)
        return Identity(
            provider=self.config.name,
            subject=subject,
            email=email,
            email_verified=email is not None and verified,
            name=next((n for n in names if isinstance(n, str) and n), None),
        )

    async def _get(self, url: str, headers: dict[str, str]) -> Any:
        status, body = await call(self._client, "GET", url, headers=headers)
        if status != 200:
            # Kakao: {"msg", "code"}; GitHub: {"message"}; OIDC: WWW-Authenticate only.
            detail = body.get("message") or body.get("code") if isinstance(body, dict) else None
            raise ProviderError(
                unavailable_or_invalid(status), f"{url} answered {status} ({detail})"
            )
        return body


def client_authentication(offered: tuple[str, ...], secret: str | None) -> ClientAuth:
    """Ours for the provider's methods: none without a secret; else basic when offered
    (OIDC Core §9 prefers it), else the secret in the form body."""
    if secret is None:
        return "none"
    return "client_secret_basic" if "client_secret_basic" in offered else "client_secret_post"


def _verified_primary(emails: Any) -> tuple[str | None, bool]:
    """GitHub's /user/emails: the primary address, only if GitHub verified it."""
    if not isinstance(emails, list):
        return None, False
    for entry in emails:
        if (
            isinstance(entry, dict)
            and entry.get("primary") is True
            and entry.get("verified") is True
            and isinstance(entry.get("email"), str)
        ):
            return entry["email"], True
    return None, False
