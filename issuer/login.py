"""Browser login: the provider list, the redirect to a provider, and the callback.

Each login gets a fresh `state`, PKCE S256 verifier and OIDC `nonce`, kept in Redis for
10 minutes and usable once, and bound to the browser by a pre-login cookie: a callback
with someone else's `state` (login CSRF) fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import secrets

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .errors import IssuerError, LoginFailed, NotFound
from .outbox import LOGIN_FAILED
from .providers import Identity, Provider, ProviderError
from .redirects import safe_return_url
from .users import ACTIVE, User
from .web import authenticate, check_csrf, client_ip, form, issuer

log = logging.getLogger("authgate.issuer")

LOGIN_STATE = "authgate:login-state:"
STATE_TTL = 600
PRELOGIN_COOKIE = "authgate_prelogin"
#: Per client IP, per minute.
LOGIN_RATE, CALLBACK_RATE = 30, 60


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def prelogin_value(request: Request) -> str:
    """The browser's pre-login secret: the one it has, else a new one."""
    value = request.cookies.get(PRELOGIN_COOKIE, "")
    return value if len(value) == 43 else secrets.token_urlsafe(32)


def set_prelogin(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        PRELOGIN_COOKIE, value, max_age=STATE_TTL, httponly=True, samesite="lax",
        secure=issuer(request).settings.secure_cookies, path="/",
    )  # fmt: skip


async def login_page(request: Request) -> Response:
    app = issuer(request)
    rd = request.query_params.get("rd", "")
    items = "".join(
        f'<li><a href="/login/{html.escape(p.config.name)}?rd={html.escape(_quote(rd))}">'
        f"Continue with {html.escape(p.config.display_name)}</a></li>"
        for p in app.providers.values()
    )
    local = ""
    prelogin = prelogin_value(request)
    if app.settings.local_accounts:
        hidden = (
            f'<input type="hidden" name="rd" value="{html.escape(rd)}">'
            f'<input type="hidden" name="login_csrf" value="{html.escape(prelogin)}">'
        )
        local = (
            f'<form method="post" action="/login/local">{hidden}'
            '<label>Email <input name="email" type="email" required'
            ' autocomplete="username"></label>'
            '<label>Password <input name="password" type="password" required'
            ' autocomplete="current-password"></label><button>Sign in</button></form>'
            f'<h2>New here?</h2><form method="post" action="/register">{hidden}'
            '<label>Email <input name="email" type="email" required'
            ' autocomplete="username"></label>'
            '<label>Name <input name="name" autocomplete="name"></label>'
            '<label>Password (10 characters or more) <input name="password" type="password"'
            ' required minlength="10" autocomplete="new-password"></label>'
            "<button>Create account</button></form>"
        )
    if not items and not local:
        items = "<li>No sign-in method is configured.</li>"
    notice = ""
    if app.settings.local_accounts and request.query_params.get("registered") == "1":
        # True whichever happened: the registration's answer must not tell (issue 12, 6).
        notice = (
            "<p>If that email had no account, it has one now: sign in below. If it had one,"
            " we have let its owner know.</p>"
        )
    response = HTMLResponse(page("Sign in", f"{notice}<ul>{items}</ul>{local}"))
    set_prelogin(request, response, prelogin)
    return response


async def start(request: Request) -> Response:
    """GET /login/{provider}: off to the provider to sign in."""
    app = issuer(request)
    rd = safe_return_url(request.query_params.get("rd"), app.settings.return_origins)
    return await _redirect_to_provider(request, rd, link=None)


async def link(request: Request) -> Response:
    """POST /link/{provider} (signed in, CSRF token): add that provider's account to the
    signed-in user (platform.connected); the callback comes back to `rd`."""
    app = issuer(request)
    caller = await authenticate(request)
    await check_csrf(request, caller)
    rd = safe_return_url((await form(request)).get("rd"), app.settings.return_origins)
    return await _redirect_to_provider(request, rd, link=caller.user.id)


async def _provider(request: Request, bucket: str, limit: int) -> tuple[str, Provider]:
    """The provider named in the path (404 if none), after this client's rate limit."""
    app = issuer(request)
    name = request.path_params["provider"]
    provider = app.providers.get(name)
    if provider is None:
        raise NotFound(f"no provider {name!r}")
    await app.limiter.hit(bucket, client_ip(request), limit=limit, window=60)
    return name, provider


async def _redirect_to_provider(request: Request, rd: str, *, link: str | None) -> Response:
    app = issuer(request)
    name, provider = await _provider(request, "login", LOGIN_RATE)
    state, verifier, nonce = (
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(48),
        secrets.token_urlsafe(24),
    )
    prelogin = prelogin_value(request)
    record = {"provider": name, "verifier": verifier, "nonce": nonce, "rd": rd,
              "binding": _digest(prelogin), "link": link}  # fmt: skip
    await app.redis.set(LOGIN_STATE + state, json.dumps(record), ex=STATE_TTL)
    try:
        url = await provider.authorization_url(
            redirect_uri=callback_url(request, name), state=state,
            code_challenge=_b64(hashlib.sha256(verifier.encode()).digest()), nonce=nonce,
        )  # fmt: skip
    except ProviderError as exc:
        raise LoginFailed(exc.code) from exc
    response = RedirectResponse(url, status_code=302 if link is None else 303)
    set_prelogin(request, response, prelogin)
    response.headers["Cache-Control"] = "no-store"
    return response


async def callback(request: Request) -> Response:
    app = issuer(request)
    name, provider = await _provider(request, "callback", CALLBACK_RATE)
    try:
        return await _callback(request, name, provider)
    except LoginFailed as exc:
        await app.outbox.emit(app.redis, LOGIN_FAILED, "", {"method": name, "reason": exc.error})
        raise


async def _callback(request: Request, name: str, provider: Provider) -> Response:
    app = issuer(request)
    params = request.query_params
    raw = (
        await app.redis.getdel(LOGIN_STATE + params.get("state", ""))
        if params.get("state")
        else None
    )
    if params.get("error"):
        # The provider's own error (RFC 6749 §4.1.2.1), e.g. the user pressed cancel.
        error = (
            params["error"]
            if params["error"] in ("access_denied", "login_required", "consent_required")
            else "provider_error"
        )
        log.info("login failure: %s at %s", error, name)
        raise LoginFailed(error)
    if raw is None:
        raise LoginFailed("invalid_state", description_for("invalid_state"))
    record = json.loads(raw)
    binding = _digest(request.cookies.get(PRELOGIN_COOKIE, ""))
    if record["provider"] != name or not hmac.compare_digest(binding, record["binding"]):
        raise LoginFailed("invalid_state", "this sign-in was not started in this browser")
    code = params.get("code")
    if not code:
        raise LoginFailed("invalid_request", "the provider sent no code")
    try:
        identity = await provider.complete(
            code=code, redirect_uri=callback_url(request, name), code_verifier=record["verifier"],
            nonce=record["nonce"], iss=params.get("iss"),
        )  # fmt: skip
    except ProviderError as exc:
        log.info("login failure: %s at %s: %s", exc.code, name, exc.description)
        raise LoginFailed(exc.code) from exc
    if record.get("link"):
        return await _finish_link(request, record, identity)
    user, created = await app.users.upsert(identity)
    if created:
        log.info("user created: %s via %s", user.id, name)
    return await finish_login(request, user, record["rd"], method=name)


async def _finish_link(request: Request, record: dict[str, str], identity: Identity) -> Response:
    """The second half of /link: the same user must still be signed in here."""
    app = issuer(request)
    caller = await authenticate(request)
    if caller.user.id != record["link"]:
        raise LoginFailed("invalid_state", "sign in as the account you are linking to")
    if not await app.users.link(caller.user, identity):
        raise LoginFailed("identity_in_use", "that account already belongs to a user", status=409)
    log.info("platform connected: user %s + %s", caller.user.id, identity.provider)
    response = RedirectResponse(record["rd"], status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


async def finish_login(request: Request, user: User, rd: str, *, method: str) -> Response:
    """Start a session for `user`, set its cookie, and send the browser to `rd`."""
    app = issuer(request)
    session = await app.sessions.create(user, method) if user.status == ACTIVE else None
    if session is None:
        raise LoginFailed("account_suspended", "this account is suspended", status=403)
    log.info("login success: user %s", user.id)
    response = RedirectResponse(rd, status_code=303)
    response.set_cookie(
        app.settings.session_cookie, app.tokens.session_token(user, session),
        max_age=app.settings.session_ttl, httponly=True, samesite="lax",
        secure=app.settings.secure_cookies, path="/",
    )  # fmt: skip
    response.delete_cookie(PRELOGIN_COOKIE, path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


def callback_url(request: Request, provider: str) -> str:
    return f"{issuer(request).settings.public_url}/callback/{provider}"


def description_for(code: str) -> str:
    return {
        "invalid_state": "this sign-in link has expired or was already used; please start again",
        "access_denied": "sign-in was cancelled",
    }.get(code, "sign-in failed")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


#: The pages' only stylesheet, allowed by its hash in the CSP (issuer/security_headers.py).
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}"
    "ul{list-style:none;padding:0}li a{display:block;padding:.7rem 1rem;margin:.5rem 0;"
    "border:1px solid #ccc;border-radius:.4rem;text-decoration:none;color:#111}"
    "label{display:block;margin:.5rem 0}input{width:100%;padding:.4rem}"
    "button{margin-top:.7rem;padding:.5rem 1rem}"
)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · authgate</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def error_page(exc: IssuerError) -> Response:
    text = exc.description or description_for(exc.error)
    body = f"<p>{html.escape(text)}</p><p><small>{html.escape(exc.error)}</small></p>"
    body += '<p><a href="/login">Start again</a></p>'
    headers = {"Cache-Control": "no-store"}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return HTMLResponse(page("Sign-in failed", body), status_code=exc.status, headers=headers)
