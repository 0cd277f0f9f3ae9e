"""What the login flow (issuer/login.py) sees of a provider: one interface, its answer
(`Identity`) and its one error (`ProviderError`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .config import ProviderConfig


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
