"""The "seed" verifier the benchmark compares against: the obvious first implementation.

A framework endpoint (Starlette routing and Request objects, as FastAPI would give) that
decodes the JWT with PyJWT and asks Redis for the session on every request. Keys are
loaded once at start, so it is not handicapped by fetching them. Kept here, not in
verifier/: it exists only to be measured against.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import jwt
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.contract import session_key

with open(os.environ["SEED_JWKS_FILE"], encoding="utf-8") as fh:
    KEYS = {jwk["kid"]: jwt.PyJWK(jwk) for jwk in json.load(fh)["keys"]}
ISSUER = os.environ["SEED_ISSUER"]
AUDIENCE = os.environ["SEED_AUDIENCE"]
redis = aioredis.Redis.from_url(os.environ["SEED_REDIS_URL"], decode_responses=True)


async def verify(request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return Response(status_code=401)
    try:
        key = KEYS[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(
            token, key.key, algorithms=["EdDSA", "ES256"], audience=AUDIENCE, issuer=ISSUER
        )
    except (jwt.InvalidTokenError, KeyError):
        return Response(status_code=401)
    session: dict[str, str] = await redis.hgetall(session_key(claims["sid"]))
    if not session:
        return Response(status_code=401)
    return Response(
        status_code=204,
        headers={"X-Auth-User": session["sub"], "X-Auth-Roles": session.get("roles", "")},
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await redis.aclose()


app = Starlette(routes=[Route("/verify", verify)], lifespan=lifespan)
