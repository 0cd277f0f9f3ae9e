"""What the issuer's HTTP handlers share: who is calling, CSRF, cookies, error answers."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.cookies import AmbiguousCookie, find_cookie
from authgate.errors import AuthError

from .errors import CsrfFailed, InvalidRequest, IssuerError, PayloadTooLarge, Unauthenticated
from .sessions import Session
from .tokens import SESSION_CLIENT
from .users import ACTIVE, User

if TYPE_CHECKING:
    from .service import Issuer

log = logging.getLogger("authgate.issuer")


@dataclass(frozen=True)
class Caller:
    user: User
    session: Session
    via_cookie: bool


def issuer(request: Request) -> Issuer:
    value: Issuer = request.app.state.issuer
    return value


async def authenticate(request: Request) -> Caller:
    """The signed-in caller: a Bearer access token or the session cookie, for a live
    session of an active user. Raises Unauthenticated."""
    app = issuer(request)
    authorization = request.headers.get("authorization")
    try:  # the verifier's rule for a cookie sent twice (authgate/cookies.py)
        cookie = find_cookie(
            "; ".join(request.headers.getlist("cookie")), app.settings.session_cookie
        )
    except AmbiguousCookie as exc:
        raise Unauthenticated(str(exc)) from None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be Bearer")
    elif cookie:
        token = cookie
    else:
        raise Unauthenticated("not signed in")
    try:
        claims = await app.token_verifier.verify(token.encode())
    except AuthError as exc:
        raise Unauthenticated(str(exc)) from exc
    # The cookie holds only a session token: an API access token copied into it must not
    # pass for a browser session (which can mint refresh tokens and read the CSRF token).
    if authorization is None and claims.client_id != SESSION_CLIENT:
        raise Unauthenticated("the session cookie does not hold a session token")
    session = await app.sessions.get(claims.sid)
    if session is None or session.sub != claims.sub:
        raise Unauthenticated("the session has ended")
    user = await app.users.get(claims.sub)
    if user is None or user.status != ACTIVE:
        raise Unauthenticated("the account is not active")
    return Caller(user=user, session=session, via_cookie=authorization is None)


async def signed_in_person(request: Request) -> Caller | None:
    """The person signed in with the session cookie, or None: for pages, which show
    themselves differently to them (a bearer token is a client, not a person at a page)."""
    if request.headers.get("authorization") or not request.cookies:
        return None
    try:
        caller = await authenticate(request)
    except IssuerError:
        return None
    return caller if caller.via_cookie else None


async def check_csrf(request: Request, caller: Caller) -> None:
    """Cookie-authenticated changes need the session's CSRF token (header or form field)
    and, when the browser sends one, an Origin we know. Bearer callers can't be forged."""
    if not caller.via_cookie:
        return
    app = issuer(request)
    origin = request.headers.get("origin")
    # Our pages send no Referer (Referrer-Policy: no-referrer), so browsers send their
    # form posts with `Origin: null`: that names no site, and the token alone decides.
    if origin is not None and origin != "null" and origin not in app.known_origins:
        raise CsrfFailed("request from an unknown origin")
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        sent = (await form(request)).get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent.encode(), caller.session.csrf.encode()):
        raise CsrfFailed("missing or wrong CSRF token")


#: Form bodies larger than this are refused: ours hold a few short fields.
MAX_FORM_BYTES = 16_384


async def form(request: Request) -> dict[str, str]:
    """An `application/x-www-form-urlencoded` body (what RFC 6749 §3.2 and §4.1.3 and
    browser forms send); anything else is refused. The first value of each field."""
    cached: dict[str, str] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"the form is over {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise InvalidRequest("the form is not UTF-8") from None
    request.state.form = {name: values[0] for name, values in fields.items()}
    return dict(request.state.form)


def client_ip(request: Request) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the
    right-most X-Forwarded-For hop that is not one (behind nginx and then Kong the last
    hop is nginx; what lies left of the first untrusted hop is the client's to invent)."""
    peer = request.client.host if request.client else "unknown"
    trusted = issuer(request).trusted_proxies
    if not trusted.holds(peer):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted.holds(hop):
            return hop
    return hops[0] if hops else peer


def error_response(exc: IssuerError) -> Response:
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    headers = {"Cache-Control": "no-store"}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'{exc.challenge} realm="authgate", error="{exc.error}"'
    return JSONResponse(body, status_code=exc.status, headers=headers)


def problem_response(exc: IssuerError) -> Response:
    """An RFC 9457 problem document: `type`, `title`, `status`, `detail`, and our machine
    `error` code as an extension member (§3.2), so clients keep one field to switch on."""
    body: dict[str, object] = {
        "type": f"urn:authgate:error:{exc.error}",
        "title": HTTPStatus(exc.status).phrase,
        "status": exc.status,
        "detail": exc.description or HTTPStatus(exc.status).description,
        "error": exc.error,
    }
    headers = {"Cache-Control": "no-store"}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer realm="authgate", error="{exc.error}"'
    return JSONResponse(
        body, status_code=exc.status, headers=headers, media_type="application/problem+json"
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    """Sign the browser out: its session cookie goes (the session itself is ended apart)."""
    settings = issuer(request).settings
    response.delete_cookie(
        settings.session_cookie, path="/", secure=settings.secure_cookies, httponly=True,
        samesite="lax",
    )  # fmt: skip


def no_store(response: Response) -> Response:
    """Token responses and signed-in pages must not be cached (RFC 6749 §5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
