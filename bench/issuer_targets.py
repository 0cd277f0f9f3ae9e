"""Apps the issuer benchmark runs under uvicorn.

`baseline`: a plain Starlette endpoint doing one Redis write. `issuer`: the real issuer
app, with one provider swapped for one that answers at once (the provider excluded).
"""

from __future__ import annotations

import os
import secrets

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from issuer.app import create_app
from issuer.providers import Identity, ProviderConfig
from issuer.settings import load_settings

_redis = aioredis.Redis.from_url(os.environ.get("AUTHGATE_REDIS_URL", "redis://127.0.0.1:6379/0"))


async def _write(request: Request) -> Response:
    await _redis.set(f"authgate:bench:{secrets.token_hex(8)}", "1", ex=60)
    return Response(status_code=204)


baseline = Starlette(routes=[Route("/write", _write, methods=["GET", "POST"])])


class InstantProvider:
    """Answers at once with a user of its own: what's measured is the issuer's work."""

    def __init__(self) -> None:
        self.config = ProviderConfig(
            name="bench", type="oidc", display_name="Bench", client_id="bench",
            client_secret=None, scopes=("openid",),
        )  # fmt: skip

    async def authorization_url(
        self, *, redirect_uri: str, state: str, code_challenge: str, nonce: str
    ) -> str:
        return "http://127.0.0.1/authorize"

    async def complete(
        self, *, code: str, redirect_uri: str, code_verifier: str, nonce: str, iss: str | None
    ) -> Identity:
        return Identity(
            provider="bench",
            subject=code,
            email=f"{code}@bench.test",
            email_verified=True,
            name=code,
        )


issuer = create_app(load_settings())
issuer.state.issuer.providers["bench"] = InstantProvider()
