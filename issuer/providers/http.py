"""HTTP calls to providers, with failures mapped to ProviderError and no secrets logged."""

from __future__ import annotations

from typing import Any

import httpx

from .interface import ProviderError


async def call(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, parsed JSON) of a provider call; unreachable or non-JSON → ProviderError."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ProviderError(
            "provider_unavailable", f"{method} {url}: {type(exc).__name__}"
        ) from exc
    try:
        return response.status_code, response.json()
    except ValueError as exc:
        raise ProviderError(
            unavailable_or_invalid(response.status_code),
            f"{method} {url} answered {response.status_code} without JSON",
        ) from exc


def unavailable_or_invalid(status: int) -> str:
    """A provider's 5xx is its outage; anything else unexpected is a bad answer."""
    return "provider_unavailable" if status >= 500 else "invalid_response"
