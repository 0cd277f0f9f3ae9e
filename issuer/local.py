"""Local accounts (off unless AUTHGATE_LOCAL_ACCOUNTS): email + password, argon2id.

Unknown email and wrong password get the same answer, after the same work (a hash is
verified either way). Sign-in is throttled per account and per client with growing
delays, never locked (issuer/throttle.py); browsers that signed in before are throttled
apart (issuer/devices.py). Registration answers the same whether or not the email has an
account, after the same work (the password is hashed either way), and signs nobody in:
a session for new accounts only would tell (OWASP Authentication Cheat Sheet,
"Authentication and Error Messages"). The owner of an existing account is told through
a `user.registration_attempted` event.
"""

from __future__ import annotations

import hmac
import logging
import re
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from . import passwords
from .devices import LIFETIME as DEVICE_LIFETIME
from .errors import InvalidRequest, IssuerError, LoginFailed, NotFound, RateLimited
from .login import (
    PRELOGIN_COOKIE,
    carried_return_url,
    finish_login,
    message_for,
    prelogin_value,
    return_url,
    set_prelogin,
    sign_in_page,
)
from .outbox import LOGIN_FAILED, REGISTRATION_ATTEMPTED
from .web import client_ip, form, issuer

log = logging.getLogger("authgate.issuer")
HASHER = PasswordHasher()  # argon2id with the library's current (RFC 9106) parameters
#: Verified against when the email is unknown, so both failures cost the same.
_DUMMY_HASH = HASHER.hash("authgate: not a password of anyone's")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")
SIGNIN_RATE = 20  # per client IP, per minute
INVALID = "invalid email or password"


def _enabled(request: Request) -> None:
    if not issuer(request).settings.local_accounts:
        raise NotFound("local accounts are not enabled")


async def _fields(request: Request) -> dict[str, str]:
    """The form of a local-account page; 404 when local accounts are off."""
    _enabled(request)
    return await form(request)


def _check_login_csrf(request: Request, fields: dict[str, str]) -> None:
    # The form carries the pre-login cookie's value: a page of ours sent it (login CSRF).
    sent, cookie = fields.get("login_csrf", ""), request.cookies.get(PRELOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise LoginFailed("invalid_state", "please reload the sign-in page and try again")


async def sign_up_page(request: Request) -> Response:
    """GET /register: the sign-up form."""
    _enabled(request)
    rd = await carried_return_url(request, request.query_params)
    return _sign_up_form(request, rd=rd)


def _sign_up_form(
    request: Request,
    *,
    rd: str,
    email: str = "",
    name: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    app = issuer(request)
    prelogin = prelogin_value(request)
    response = app.pages.render(
        request, "sign_up.html", status=status, title="sign_up.title", rd=rd, csrf=prelogin,
        email=email, name=name, error=error, here=f"/register?rd={quote(rd, safe='')}",
    )  # fmt: skip
    set_prelogin(request, response, prelogin)
    return response


async def sign_in(request: Request) -> Response:
    """POST /login/local. A refusal is the sign-in page again, the reason said inline and
    the email and return URL kept."""
    fields = await _fields(request)
    try:
        _check_login_csrf(request, fields)
        return await _sign_in(request, fields)
    except (LoginFailed, RateLimited) as exc:
        return await _again(request, fields, exc)


async def _again(request: Request, fields: dict[str, str], exc: IssuerError) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return sign_in_page(
        request, rd=await carried_return_url(request, fields),
        email=fields.get("email", "").strip()[:254], error=message_for(request, exc),
        status=exc.status, headers=headers,
    )  # fmt: skip


async def _sign_in(request: Request, fields: dict[str, str]) -> Response:
    app = issuer(request)
    address = client_ip(request)
    await app.limiter.hit("signin", address, limit=SIGNIN_RATE, window=60)
    email = fields.get("email", "").strip().lower()
    account = app.throttle.account_key(email)
    device = app.devices.device(request.cookies.get(app.devices.name, ""), account)
    # A browser that signed in here before is throttled on its own: an attacker's failures
    # elsewhere never slow it (issue 12, finding 9). Every other client shares the
    # account's bucket and is throttled by its address too.
    bucket = app.throttle.device(account, device) if device else app.throttle.account(account)
    client = None if device else app.throttle.client(address)
    await app.throttle.check(bucket)  # a refused attempt charges the client nothing
    if client is not None:
        await app.throttle.attempt(client)
    await app.throttle.attempt(bucket)
    found = await app.users.local_credentials(email) if EMAIL.fullmatch(email) else None
    try:
        HASHER.verify(found[1] if found else _DUMMY_HASH, fields.get("password", ""))
        ok = found is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or found is None:
        who = found[0] if found else ""
        data = {"method": "local", "reason": "invalid_credentials", "user_id": who}
        await app.outbox.emit(app.redis, LOGIN_FAILED, who, data)
        raise LoginFailed("invalid_credentials", INVALID, status=401)
    await app.throttle.succeeded(bucket)
    if client is not None:
        await app.throttle.refund(client)
    uid, stored = found
    if HASHER.check_needs_rehash(stored):
        await app.users.set_password_hash(uid, HASHER.hash(fields.get("password", "")))
    user = await app.users.get(uid)
    if user is None:
        raise LoginFailed("invalid_credentials", INVALID, status=401)
    response = await finish_login(request, user, await return_url(request, fields), method="local")
    if device is None:
        response.set_cookie(
            app.devices.name, app.devices.issue(account), max_age=DEVICE_LIFETIME,
            httponly=True, samesite="strict", secure=app.settings.secure_cookies, path="/",
        )  # fmt: skip
    return response


async def register(request: Request) -> Response:
    """POST /register. A refusal (a bad email, a weak password, too many tries) is the
    sign-up page again, the reason said inline, what was typed kept but the password."""
    fields = await _fields(request)
    try:
        _check_login_csrf(request, fields)
        return await _register(request, fields)
    except (InvalidRequest, LoginFailed, RateLimited) as exc:
        return _sign_up_form(
            request, rd=await carried_return_url(request, fields),
            email=fields.get("email", "").strip()[:254], name=fields.get("name", "").strip()[:200],
            error=message_for(request, exc), status=exc.status,
        )  # fmt: skip


async def _register(request: Request, fields: dict[str, str]) -> Response:
    app = issuer(request)
    await app.limiter.hit("register", client_ip(request), limit=SIGNIN_RATE, window=60)
    email = fields.get("email", "").strip()
    password = fields.get("password", "")
    if not EMAIL.fullmatch(email):
        raise InvalidRequest("a valid email address is required")
    weakness = passwords.problem(password, email=email)
    if weakness is not None:
        raise InvalidRequest(weakness)
    name, hashed = fields.get("name", "").strip()[:200], HASHER.hash(password)
    user = await app.users.create_local(email, name, hashed)
    if user is None:
        owner = await app.users.local_owner(email)
        if owner is not None:
            log.info("registration attempt for an existing account: user %s", owner)
            data = {"user_id": owner, "email": email.lower()}
            await app.outbox.emit(app.redis, REGISTRATION_ATTEMPTED, owner, data)
    else:
        log.info("user created: %s via local", user.id)
    # The same answer either way: on to the sign-in page, which says what happened in
    # words true of both cases.
    rd = await carried_return_url(request, fields)
    response = RedirectResponse(f"/login?registered=1&rd={quote(rd, safe='')}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response
