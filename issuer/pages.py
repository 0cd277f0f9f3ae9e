"""The pages a person uses around signing in: their account (who they are, where they
are signed in, sign out of one place or all), sign-out with a confirmation, the page after
it, and the 403 page nginx shows (`error_page 403 /_authgate/forbidden`). All live under
`/_authgate/`, which the site routes to the issuer like `/login`, so any protected app
can link to them on its own host."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .errors import NotFound
from .sessions import LOGOUT
from .web import (
    Caller,
    authenticate,
    check_csrf,
    clear_session_cookie,
    form,
    issuer,
    no_store,
    signed_in_person,
)

log = logging.getLogger("authgate.issuer")
ACCOUNT = "/_authgate/account"
SIGNED_OUT = "/_authgate/signed-out"


@dataclass(frozen=True)
class SessionRow:
    sid: str
    current: bool
    when: str
    method: str
    agent: str


def who_is(caller: Caller) -> str:
    user = caller.user
    return (
        f"{user.name} ({user.email})"
        if user.name and user.email
        else user.email or user.name or user.id
    )


def _to_sign_in(here: str) -> Response:
    from urllib.parse import quote

    return no_store(RedirectResponse(f"/login?rd={quote(here, safe='')}", status_code=303))


async def account(request: Request) -> Response:
    caller = await signed_in_person(request)
    if caller is None:
        return _to_sign_in(ACCOUNT)
    app = issuer(request)
    rows = [
        SessionRow(s.sid, s.sid == caller.session.sid,
                   time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(s.created)),
                   s.method or "?", s.agent)
        for s in await app.sessions.listed(caller.user.id)
    ]  # fmt: skip
    rows.sort(key=lambda r: not r.current)  # this browser first
    return app.pages.render(
        request, "account.html", title="account.title", who=who_is(caller),
        roles=" ".join(sorted(caller.user.roles)), sessions=rows, csrf=caller.session.csrf,
        ended=request.query_params.get("ended") == "1",
    )  # fmt: skip


async def end_session(request: Request) -> Response:
    """POST from the account page: end one of the caller's sessions."""
    caller = await authenticate(request)
    await check_csrf(request, caller)
    sid = (await form(request)).get("sid", "")
    app = issuer(request)
    if sid not in {s.sid for s in await app.sessions.listed(caller.user.id)}:
        raise NotFound("no such session of yours")
    await app.sessions.end(sid, caller.user.id, LOGOUT)
    log.info("logout: user %s ended a session from the account page", caller.user.id)
    if sid == caller.session.sid:
        return _signed_out(request)
    return no_store(RedirectResponse(f"{ACCOUNT}?ended=1", status_code=303))


async def end_all(request: Request) -> Response:
    caller = await authenticate(request)
    await check_csrf(request, caller)
    count = await issuer(request).sessions.end_all(caller.user.id, LOGOUT)
    log.info("logout: user %s ended all %d sessions", caller.user.id, count)
    return _signed_out(request)


async def sign_out_page(request: Request) -> Response:
    caller = await signed_in_person(request)
    if caller is None:
        return no_store(RedirectResponse(SIGNED_OUT, status_code=303))
    return issuer(request).pages.render(
        request, "sign_out.html", title="sign_out.title",
        who=who_is(caller), csrf=caller.session.csrf,
    )  # fmt: skip


async def sign_out(request: Request) -> Response:
    caller = await authenticate(request)
    await check_csrf(request, caller)
    await issuer(request).sessions.end(caller.session.sid, caller.user.id, LOGOUT)
    log.info("logout: user %s", caller.user.id)
    return _signed_out(request)


def _signed_out(request: Request) -> Response:
    """To the signed-out page, with the session cookie cleared."""
    response = RedirectResponse(SIGNED_OUT, status_code=303)
    clear_session_cookie(request, response)
    return no_store(response)


async def signed_out(request: Request) -> Response:
    return issuer(request).pages.render(request, "signed_out.html", title="signed_out.title")


async def forbidden(request: Request) -> Response:
    caller = await signed_in_person(request)
    return issuer(request).pages.render(
        request, "forbidden.html", status=403, title="forbidden.title",
        who=who_is(caller) if caller else "", here="/_authgate/forbidden",
    )  # fmt: skip


async def static(request: Request) -> Response:
    found = issuer(request).pages.asset(request.path_params["name"])
    if found is None:
        raise NotFound("no such file")
    return found
