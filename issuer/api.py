"""Token endpoint, logout, revocation, discovery, JWKS, /me, health."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from authgate.contract import ASYMMETRIC_ALGORITHMS, JWKS_PATH

from . import client_auth, device_flow, grants
from .errors import InvalidRequest, InvalidScope, UnsupportedGrantType
from .outbox import backlog
from .redirects import safe_return_url
from .sessions import LOGOUT
from .signing import jwks
from .web import (
    authenticate,
    check_csrf,
    clear_session_cookie,
    client_ip,
    form,
    issuer,
    no_store,
)

log = logging.getLogger("authgate.issuer")

#: grant_type for "give this browser session an access/refresh pair for API use".
SESSION_GRANT = "urn:authgate:params:oauth:grant-type:session"
API_CLIENT = "authgate-api"


async def token(request: Request) -> Response:
    app = issuer(request)
    await app.limiter.hit("token", client_ip(request), limit=app.settings.token_rate, window=60)
    fields = await form(request)
    grant = fields.get("grant_type")
    if grant == grants.CLIENT_CREDENTIALS:
        return await grants.client_credentials(request, fields)
    if grant == device_flow.GRANT_TYPE:
        return await grants.device_code(request, fields)
    if grant == "refresh_token":
        refresh = fields.get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise InvalidRequest("refresh_token is required")
        return no_store(JSONResponse(await app.tokens.refresh(refresh)))
    if grant == SESSION_GRANT:
        caller = await authenticate(request)
        if not caller.via_cookie:
            raise InvalidRequest("this grant takes the browser session cookie")
        await check_csrf(request, caller)
        # The pair's scope: what was asked for, within the session's own.
        scope = fields.get("scope", caller.session.scope)
        if not set(scope.split()) <= set(caller.session.scope.split()):
            raise InvalidScope("the requested scope exceeds the session's")
        pair = await app.tokens.issue(caller.user, caller.session, API_CLIENT, scope)
        return no_store(JSONResponse(pair))
    raise UnsupportedGrantType(f"grant_type {grant!r} is not supported")


async def logout(request: Request) -> Response:
    """End the session everywhere: delete it, announce it, clear the cookie."""
    app = issuer(request)
    caller = await authenticate(request)
    await check_csrf(request, caller)
    await app.sessions.end(caller.session.sid, caller.user.id, LOGOUT)
    log.info("logout: user %s", caller.user.id)
    rd = request.query_params.get("rd")
    response: Response
    if rd:
        response = RedirectResponse(
            safe_return_url(rd, app.settings.return_origins), status_code=303
        )
    else:
        response = Response(status_code=204)
    clear_session_cookie(request, response)
    return no_store(response)


async def revoke(request: Request) -> Response:
    """RFC 7009. A refresh token or an access token of ours ends its session; anything
    else is answered 200 too (§2.2: the client can't act on the difference)."""
    app = issuer(request)
    await app.limiter.hit("token", client_ip(request), limit=app.settings.token_rate, window=60)
    fields = await form(request)
    value = fields.get("token")
    if not isinstance(value, str) or not value:
        raise InvalidRequest("token is required")
    if not await app.tokens.revoke(value):
        try:
            claims = await app.token_verifier.verify(value.encode())
        except Exception:
            claims = None
        if claims is not None:
            await app.sessions.end(claims.sid, claims.sub, "revoked")
    return no_store(Response(status_code=200))


async def me(request: Request) -> Response:
    caller = await authenticate(request)
    body = {**caller.user.public(), "session": {"expires_at": caller.session.expires_at}}
    if caller.via_cookie:
        body["csrf_token"] = caller.session.csrf  # for the browser's own POSTs
    return no_store(JSONResponse(body))


async def delete_me(request: Request) -> Response:
    """A user may delete themselves."""
    caller = await authenticate(request)
    await check_csrf(request, caller)
    await issuer(request).delete_user(caller.user, actor=caller.user.id)
    return no_store(Response(status_code=204))


async def openid_configuration(request: Request) -> Response:
    base = issuer(request).settings.public_url
    return JSONResponse({
        "issuer": base,
        "authorization_endpoint": f"{base}/login",
        "token_endpoint": f"{base}/token",
        "revocation_endpoint": f"{base}/revoke",
        "jwks_uri": f"{base}{JWKS_PATH}",
        "userinfo_endpoint": f"{base}/me",
        "device_authorization_endpoint": f"{base}/device_authorization",
        "grant_types_supported": ["refresh_token", SESSION_GRANT, grants.CLIENT_CREDENTIALS,
                                  device_flow.GRANT_TYPE],
        "token_endpoint_auth_methods_supported": list(client_auth.METHODS),
        "token_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGORITHMS),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    })  # fmt: skip


async def jwks_document(request: Request) -> Response:
    document = jwks(issuer(request).keys.published())
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})


async def healthz(request: Request) -> Response:
    return Response("ok\n", media_type="text/plain")


async def readyz(request: Request) -> Response:
    """Ready when Redis answers. RabbitMQ is reported, not required: with it down, logins
    go on and events wait in the outbox."""
    app = issuer(request)
    try:
        redis_ok = bool(await app.redis.ping())
        outbox = await _backlog(request)
    except Exception:  # any failure means not ready
        redis_ok, outbox = False, {}
    relay, inbound = app.relay, app.inbound
    body = {
        "ready": redis_ok,
        "checks": {"redis": redis_ok},
        "outbox": outbox,
        "relay": None if relay is None else {
            "connected": relay.connected,
            "published": relay.published,
            "last_error": relay.last_error,
        },
        "inbound": None if inbound is None else {"connected": inbound.connected},
    }  # fmt: skip
    return JSONResponse(body, status_code=200 if redis_ok else 503)


async def _backlog(request: Request) -> dict[str, int]:
    return await backlog(issuer(request).redis)


async def metrics(request: Request) -> Response:
    """Prometheus text: the outbox backlog, the relay's and the consumer's state."""
    app = issuer(request)
    backlog = await _backlog(request)
    relay, inbound = app.relay, app.inbound
    values = [
        ("authgate_issuer_outbox_waiting", "gauge",
         "Events not yet confirmed by RabbitMQ.", backlog["waiting"]),
        ("authgate_issuer_outbox_unroutable", "gauge",
         "Events no queue was bound for (kept).", backlog["unroutable"]),
        ("authgate_issuer_relay_connected", "gauge",
         "1 while the relay holds a RabbitMQ connection.", int(bool(relay and relay.connected))),
        ("authgate_issuer_relay_published_total", "counter",
         "Events confirmed by RabbitMQ.", relay.published if relay else 0),
        ("authgate_issuer_inbound_connected", "gauge",
         "1 while consuming lifecycle events.", int(bool(inbound and inbound.connected))),
        ("authgate_issuer_inbound_processed_total", "counter",
         "Lifecycle events processed.", inbound.processed if inbound else 0),
        ("authgate_issuer_inbound_failed_total", "counter",
         "Lifecycle deliveries that failed.", inbound.failed if inbound else 0),
        ("authgate_issuer_revocations_unreplicated_total", "counter",
         "Ended or rewritten sessions fewer replicas than AUTHGATE_REVOCATION_REPLICAS held "
         "in time.", app.sessions.unreplicated),
    ]  # fmt: skip
    lines = []
    for name, kind, text, value in values:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
