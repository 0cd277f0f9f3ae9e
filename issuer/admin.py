"""Admin API (role `admin`): list and search users, show one, set roles, suspend, delete.

Every change reaches the verifiers at once: the user's sessions are rewritten (roles) or
ended (suspension, deletion), each announced on the session-events channel.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import Forbidden, InvalidRequest, NotFound
from .users import ACTIVE, SUSPENDED, User
from .web import Caller, authenticate, check_csrf, issuer, no_store

log = logging.getLogger("authgate.issuer")
ROLE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


async def _admin(request: Request, *, changes: bool) -> Caller:
    caller = await authenticate(request)
    if "admin" not in caller.user.roles:
        raise Forbidden("the admin role is required")
    if changes:
        await check_csrf(request, caller)
    return caller


async def _target(request: Request) -> User:
    user = await issuer(request).users.get(request.path_params["uid"])
    if user is None:
        raise NotFound("no such user")
    return user


async def list_users(request: Request) -> Response:
    await _admin(request, changes=False)
    params = request.query_params
    try:
        cursor = int(params.get("cursor", "0"))
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise InvalidRequest("cursor and limit are whole numbers") from None
    if cursor < 0 or not 1 <= limit <= 200:
        raise InvalidRequest("cursor ≥ 0 and 1 ≤ limit ≤ 200")
    users, following = await issuer(request).users.page(
        query=params.get("q", ""), cursor=cursor, limit=limit
    )
    return no_store(JSONResponse({"users": [u.public() for u in users], "next_cursor": following}))


async def show_user(request: Request) -> Response:
    await _admin(request, changes=False)
    return no_store(JSONResponse((await _target(request)).public()))


async def set_roles(request: Request) -> Response:
    caller = await _admin(request, changes=True)
    user = await _target(request)
    try:
        body = await request.json()
    except ValueError:
        raise InvalidRequest('the body must be JSON: {"roles": [...]}') from None
    roles = body.get("roles") if isinstance(body, dict) else None
    if not isinstance(roles, list) or not all(
        isinstance(r, str) and ROLE.fullmatch(r) for r in roles
    ):
        raise InvalidRequest("roles must be a list of role names")
    app = issuer(request)
    await app.users.set_roles(user.id, frozenset(roles), actor=caller.user.id)
    updated = await app.users.get(user.id)
    assert updated is not None
    await app.sessions.update_all(updated)
    log.info("admin %s set roles of %s: %s", caller.user.id, user.id, " ".join(sorted(roles)))
    return no_store(JSONResponse(updated.public()))


async def suspend(request: Request) -> Response:
    return await _set_status(request, SUSPENDED)


async def reactivate(request: Request) -> Response:
    return await _set_status(request, ACTIVE)


async def _set_status(request: Request, status: str) -> Response:
    caller = await _admin(request, changes=True)
    user = await _target(request)
    app = issuer(request)
    ended = await app.set_status(user, status, actor=caller.user.id)
    log.info("admin %s set %s %s (%d session(s) ended)", caller.user.id, user.id, status, ended)
    refreshed = await app.users.get(user.id)
    assert refreshed is not None
    return no_store(JSONResponse(refreshed.public()))


async def delete_user(request: Request) -> Response:
    caller = await _admin(request, changes=True)
    user = await _target(request)
    await issuer(request).delete_user(user, actor=caller.user.id)
    log.info("admin %s deleted %s", caller.user.id, user.id)
    return no_store(Response(status_code=204))
