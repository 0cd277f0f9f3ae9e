"""The grants of API clients without a browser: client credentials (RFC 6749 §4.4) and
the device authorization grant (RFC 8628), both answered at the token endpoint, and the
device authorization endpoint itself (§3.1-3.2).

Rate limits: every token request counts against its address (issuer.api); a client that
authenticated also counts against its own bucket — only then, so that nobody can use up a
client's allowance by sending its id with a wrong secret.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .client_auth import Authenticated
from .clients import DEVICE, SERVICE, Client
from .device_flow import INTERVAL, LIFETIME, shown
from .errors import (
    AccessDenied,
    AuthorizationPending,
    ExpiredToken,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    SlowDown,
    UnauthorizedClient,
)
from .web import client_ip, form, issuer, no_store

log = logging.getLogger("authgate.issuer")

CLIENT_CREDENTIALS = "client_credentials"
DEVICE_PAGE = "/_authgate/device"
DEVICE_METHOD = "device code"


def narrowed(requested: str | None, held: frozenset[str]) -> str:
    """The scope to grant: all the client holds when none is asked for, else what was
    asked for; asking for anything it doesn't hold is `invalid_scope` (RFC 6749 §5.2)."""
    if requested is None:
        return " ".join(sorted(held))
    asked = set(requested.split())
    if not asked <= held:
        raise InvalidScope("the requested scope exceeds what the client holds")
    return " ".join(sorted(asked))


async def authenticated_client(request: Request, fields: dict[str, str]) -> Authenticated:
    app = issuer(request)
    found = await app.client_auth.authenticate(request.headers.get("authorization"), fields)
    await app.limiter.hit(
        "token-client", found.client.id, limit=app.settings.client_token_rate, window=60
    )
    return found


async def client_credentials(request: Request, fields: dict[str, str]) -> Response:
    app = issuer(request)
    found = await authenticated_client(request, fields)
    client = found.client
    if client.kind != SERVICE:
        raise UnauthorizedClient("this client may use the device flow only")
    scope = narrowed(fields.get("scope"), client.scopes)
    sid = await app.clients.start_session(
        client, found.credential, scope, app.settings.access_token_ttl
    )
    if sid is None:  # suspended, or the credential removed, while this request ran
        raise UnauthorizedClient("the client was suspended or its credential removed")
    log.info("client token: client=%s method=%s", client.id, found.method)
    body: dict[str, Any] = {
        "access_token": app.tokens.client_token(client, sid, scope),
        "token_type": "Bearer",
        "expires_in": app.settings.access_token_ttl,
    }
    if scope:
        body["scope"] = scope
    return no_store(JSONResponse(body))  # no refresh token (RFC 6749 §4.4.3)


async def _device_client(request: Request, fields: dict[str, str]) -> Client:
    found = await authenticated_client(request, fields)
    if found.client.kind != DEVICE:
        raise UnauthorizedClient("this client may not use the device flow")
    return found.client


async def device_authorization(request: Request) -> Response:
    """RFC 8628 §3.1-3.2: a device code pair for a device client."""
    app = issuer(request)
    await app.limiter.hit("token", client_ip(request), limit=app.settings.token_rate, window=60)
    fields = await form(request)
    client = await _device_client(request, fields)
    scope = narrowed(fields.get("scope"), client.scopes)
    device_code, user_code = await app.device_flow.start(client.id, scope)
    page = app.settings.public_url + DEVICE_PAGE
    log.info("device authorization: client=%s", client.id)
    return no_store(JSONResponse({
        "device_code": device_code,
        "user_code": shown(user_code),
        "verification_uri": page,
        "verification_uri_complete": f"{page}?user_code={shown(user_code)}",
        "expires_in": LIFETIME,
        "interval": INTERVAL,
    }))  # fmt: skip


async def device_code(request: Request, fields: dict[str, str]) -> Response:
    """RFC 8628 §3.4-3.5: a poll; tokens once the person approved."""
    app = issuer(request)
    code = fields.get("device_code")
    if not code:
        raise InvalidRequest("device_code is required")
    client = await _device_client(request, fields)
    poll = await app.device_flow.poll(code, client.id)
    if poll.outcome == "pending":
        raise AuthorizationPending("the person has not answered yet")
    if poll.outcome == "slow_down":
        raise SlowDown(f"poll at most every {poll.interval} seconds")
    if poll.outcome == "expired":
        raise ExpiredToken("the device code has expired: start again")
    if poll.outcome == "denied":
        raise AccessDenied("the person denied the request")
    if poll.outcome != "approved":
        raise InvalidGrant("unknown device code")
    user = await app.users.get(poll.uid)
    session = None
    if user is not None:
        session = await app.sessions.create(
            user, DEVICE_METHOD, client.name, client=client.id, scope=poll.scope
        )
    if user is None or session is None:
        raise AccessDenied("the account is no longer active")
    await app.clients.track(client.id, session.sid)
    log.info("device sign-in: user %s through client %s", user.id, client.id)
    return no_store(JSONResponse(await app.tokens.issue(user, session, client.id, poll.scope)))
