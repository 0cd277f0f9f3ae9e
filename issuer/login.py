"""Browser login: the provider list, the redirect to a provider, and the callback.

Each login gets a fresh `state`, PKCE S256 verifier and OIDC `nonce`, kept in Redis for
10 minutes and usable once, and bound to the browser by a pre-login cookie: a callback
with someone else's `state` (login CSRF) fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .errors import IssuerError, LoginFailed, NotFound
from .outbox import LOGIN_FAILED
from .providers import Identity, Provider, ProviderError
from .redirects import safe_return_url
from .templating import language
from .users import ACTIVE, User
from .web import (
    authenticate,
    check_csrf,
    client_ip,
    form,
    issuer,
    no_store,
    signed_in_person,
)

log = logging.getLogger("authgate.issuer")

LOGIN_STATE = "authgate:login-state:"
STATE_TTL = 600
LOGIN_LATEST = "authgate:login-latest:"
LATEST_TTL = 3600
#: The longest `#fragment` carried back after sign-in.
MAX_FRAGMENT = 512
#: Return URLs longer than this travel between the pages as a token (`carried`).
MAX_CARRIED = 2048
RETURN_URL = "authgate:return-url:"
RETURN_URL_TTL = 3600
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
    """The sign-in page; someone already signed in goes straight on to `rd`."""
    rd = await return_url(request, request.query_params)
    if await signed_in_person(request) is not None:
        return no_store(RedirectResponse(rd, status_code=303))
    return sign_in_page(
        request, rd=await carried(request, rd),
        registered=request.query_params.get("registered") == "1",
    )  # fmt: skip


def sign_in_page(
    request: Request,
    *,
    rd: str,
    email: str = "",
    error: str = "",
    status: int = 200,
    registered: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """The sign-in page: the providers' buttons and, when on, the email form, `error`
    shown inline with what was typed kept (never the password)."""
    app = issuer(request)
    prelogin = prelogin_value(request)
    response = app.pages.render(
        request, "sign_in.html", status=status, headers=headers, title="sign_in.title",
        providers=provider_buttons(request), local=app.settings.local_accounts, rd=rd,
        csrf=prelogin, email=email, error=error, registered=registered,
        here=f"/login?rd={_quote(rd)}",
    )  # fmt: skip
    set_prelogin(request, response, prelogin)
    return response


@dataclass(frozen=True)
class Button:
    name: str
    kind: str
    label: str


def provider_buttons(request: Request) -> list[Button]:
    """Each provider's button, labelled as its brand guide asks (Kakao, GitHub) or with
    its display name (any OIDC provider)."""
    from .catalogue import message

    lang = language(request)
    buttons = []
    for provider in issuer(request).providers.values():
        config = provider.config
        kind = config.type if config.type in ("kakao", "github") else "oidc"
        label = message(f"provider.{kind}", lang, name=config.display_name)
        buttons.append(Button(config.name, kind, label))
    return buttons


async def return_url(request: Request, fields: Mapping[str, str]) -> str:
    """Where to go after signing in: `rd` (with the page's `#fragment`, which only the
    page's script can see) when it is safe, else the landing page. A long `rd` comes as
    the token of its copy in Redis (`carried`)."""
    app = issuer(request)
    rd = fields.get("rd") or ""
    if rd.startswith("~"):
        rd = await app.redis.get(RETURN_URL + rd[1:]) or ""
    fragment = fields.get("fragment") or ""
    if rd and fragment and "#" not in rd and len(fragment) <= MAX_FRAGMENT:
        rd = f"{rd}#{fragment}"
    settings = app.settings
    return safe_return_url(rd, settings.return_origins, default=settings.landing_url)


async def carried_return_url(request: Request, fields: Mapping[str, str]) -> str:
    """`return_url` as the pages carry it."""
    return await carried(request, await return_url(request, fields))


async def carried(request: Request, rd: str) -> str:
    """`rd` as the pages carry it in their links and forms: itself, or when longer than
    a URL comfortably travels, `~token` for a copy in Redis (an hour)."""
    if len(rd) <= MAX_CARRIED:
        return rd
    token = secrets.token_urlsafe(16)
    await issuer(request).redis.set(RETURN_URL + token, rd, ex=RETURN_URL_TTL)
    return f"~{token}"


async def start(request: Request) -> Response:
    """GET /login/{provider}: off to the provider to sign in."""
    rd = await return_url(request, request.query_params)
    restarts = 1 if request.query_params.get("restart") == "1" else 0
    return await _redirect_to_provider(request, rd, link=None, restarts=restarts)


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


async def _redirect_to_provider(
    request: Request, rd: str, *, link: str | None, restarts: int = 0
) -> Response:
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
    if link is None:
        # This browser's latest sign-in, kept longer than a state: a callback whose state
        # has expired, or was used by another tab, starts it again instead of ending.
        latest = {"provider": name, "rd": rd, "restarts": restarts}
        await app.redis.set(LOGIN_LATEST + _digest(prelogin), json.dumps(latest), ex=LATEST_TTL)
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
        return await _restart(request, name)
    record = json.loads(raw)
    request.state.rd = record["rd"]  # the error page's "start again" keeps it
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
    agent = request.headers.get("user-agent", "")
    session = await app.sessions.create(user, method, agent) if user.status == ACTIVE else None
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


async def _restart(request: Request, name: str) -> Response:
    """A callback with no live state (expired, or used by another tab): this browser's
    latest sign-in at this provider starts again, once; otherwise it is an error page."""
    app = issuer(request)
    binding = _digest(request.cookies.get(PRELOGIN_COOKIE, ""))
    raw = await app.redis.get(LOGIN_LATEST + binding)
    latest = json.loads(raw) if raw else None
    if latest is None or latest["provider"] != name or latest["restarts"] >= 1:
        if latest is not None:
            request.state.rd = latest["rd"]
        raise LoginFailed("invalid_state", description_for("invalid_state"))
    log.info("login restarted: state expired or used at %s", name)
    again = f"/login/{name}?rd={_quote(latest['rd'])}&restart=1"
    return no_store(RedirectResponse(again, status_code=303))


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


def error_page(request: Request, exc: IssuerError) -> Response:
    """A failed sign-in, said in words, with a way on that keeps where the person was
    going. Rate limits say how long to wait."""
    app = issuer(request)
    rd = getattr(request.state, "rd", None) or app.settings.landing_url
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return app.pages.render(
        request, "error.html", status=exc.status, headers=headers, title="error.title",
        message=message_for(request, exc), code=exc.error, rd=rd,
    )  # fmt: skip


def message_for(request: Request, exc: IssuerError) -> str:
    """What to tell a person about `exc`, in their language."""
    from .catalogue import MESSAGES, message

    lang = language(request)
    if exc.retry_after is not None:
        return message("error.wait", lang, seconds=exc.retry_after)
    if exc.error == "invalid_request" and exc.description:
        return message("error.invalid_request", lang, detail=exc.description)
    if exc.error == "temporarily_unavailable":
        return message("error.unavailable", lang)
    key = f"error.{exc.error}"
    return message(key if key in MESSAGES else "error.other", lang)
