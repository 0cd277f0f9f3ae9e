"""The page where a signed-in person answers a device sign-in (RFC 8628 §3.3).

GET `/_authgate/device[?user_code=…]`: the code form (filled in from
`verification_uri_complete`). POST with the code: which tool asks, with which scope, and
the code again to compare with the device (§5.4: a person is told to check it). POST with
`decision`: allowed or denied. Entering codes is rate-limited per person (the user code
has about 34 bits, §5.1) and every POST needs the session's CSRF token.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .device_flow import normalize_user_code, shown
from .errors import RateLimited
from .grants import DEVICE_PAGE
from .pages import who_is
from .web import Caller, authenticate, check_csrf, form, issuer, no_store, signed_in_person

log = logging.getLogger("authgate.issuer")
#: Codes a person may try per minute.
ENTRY_RATE = 10


async def device_page(request: Request) -> Response:
    caller = await signed_in_person(request)
    typed = request.query_params.get("user_code", "")[:32]
    if caller is None:
        here = DEVICE_PAGE + (f"?user_code={quote(typed, safe='')}" if typed else "")
        return no_store(RedirectResponse(f"/login?rd={quote(here, safe='')}", status_code=303))
    return _form(request, caller, typed)


def _form(request: Request, caller: Caller, typed: str, error: str = "") -> Response:
    return issuer(request).pages.render(
        request, "device.html", status=400 if error else 200, title="device.title",
        csrf=caller.session.csrf, user_code=typed, error=error, here=DEVICE_PAGE,
    )  # fmt: skip


async def device_answer(request: Request) -> Response:
    caller = await authenticate(request)
    await check_csrf(request, caller)
    app = issuer(request)
    fields = await form(request)
    typed = fields.get("user_code", "")[:32]
    try:
        await app.limiter.hit("device-entry", caller.user.id, limit=ENTRY_RATE, window=60)
    except RateLimited as exc:
        error = app.pages.message(request, "error.wait", seconds=exc.retry_after or 60)
        return _form(request, caller, typed, error)
    code = normalize_user_code(typed)
    pending = await app.device_flow.find(code) if code else None
    client = await app.clients.get(pending.client) if pending else None
    if pending is None or client is None or not client.active:
        return _form(request, caller, typed, app.pages.message(request, "device.bad_code"))
    decision = fields.get("decision")
    if decision not in ("allow", "deny"):
        return app.pages.render(
            request, "device_confirm.html", title="device.confirm_title", here=DEVICE_PAGE,
            client=client.name, who=who_is(caller), scopes=pending.scope,
            code=shown(pending.user_code), csrf=caller.session.csrf,
        )  # fmt: skip
    allowed = decision == "allow"
    if not await app.device_flow.decide(pending, allowed, caller.user.id):
        return _form(request, caller, "", app.pages.message(request, "device.bad_code"))
    log.info("device sign-in %s: user %s, client %s",
             "allowed" if allowed else "denied", caller.user.id, client.id)  # fmt: skip
    return app.pages.render(
        request, "device_done.html", here=DEVICE_PAGE, client=client.name, allowed=allowed,
        title="device.allowed_title" if allowed else "device.denied_title",
    )  # fmt: skip
