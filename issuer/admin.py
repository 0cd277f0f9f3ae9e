"""Admin API (role `admin`): list and search users, show one, set roles, suspend, delete.

Every change reaches the verifiers at once: the user's sessions are rewritten (roles) or
ended (suspension, deletion), each announced on the session-events channel.

Every query parameter is checked before anything reaches Redis (issue 12, finding 8: a
cursor past Redis's integer range came back as a Redis error, answered 503 and logged as
an outage). A bad one is a 400, answered as RFC 9457 problem+json on /admin/.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import Forbidden, InvalidRequest, NotFound
from .users import ACTIVE, SUSPENDED, User
from .web import Caller, authenticate, check_csrf, issuer, no_store

log = logging.getLogger("authgate.issuer")
T = TypeVar("T")
ROLE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: User ids are `secrets.token_urlsafe(16)`; anything else names nobody.
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: ASCII digits only: int() would also take "1_000", " 5", "+5" and other scripts' digits.
NUMBER = re.compile(r"[0-9]{1,15}")
#: A position in the creation order; far past any real count, well inside Redis's range.
MAX_CURSOR = 10**12
MAX_QUERY = 200


def query_params(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters, each known and given at most once."""
    pairs = request.query_params.multi_items()
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0][:40]!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidRequest(f"query parameter {repeated[0]!r} given more than once")
    return dict(pairs)


def _number(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, str(default))
    if not NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


async def admin_caller(request: Request, *, changes: bool) -> Caller:
    caller = await authenticate(request)
    if "admin" not in caller.user.roles:
        raise Forbidden("the admin role is required")
    if changes:
        await check_csrf(request, caller)
    return caller


async def path_target(
    request: Request,
    name: str,
    pattern: re.Pattern[str],
    find: Callable[[str], Awaitable[T | None]],
) -> T:
    """What the path parameter `name` names (no query parameters taken): an id of the
    wrong shape never reaches Redis; what names nothing is a 404."""
    query_params(request, frozenset())
    ref = request.path_params[name]
    found = await find(ref) if pattern.fullmatch(ref) else None
    if found is None:
        raise NotFound(f"no such {name}")
    return found


async def _target(request: Request) -> User:
    return await path_target(request, "user", USER_ID, issuer(request).users.get)


async def list_users(request: Request) -> Response:
    await admin_caller(request, changes=False)
    params = query_params(request, frozenset({"q", "cursor", "limit"}))
    cursor = _number(params, "cursor", 0, 0, MAX_CURSOR)
    limit = _number(params, "limit", 50, 1, 200)
    query = params.get("q", "")
    if len(query) > MAX_QUERY or not query.isprintable():
        raise InvalidRequest(f"q must be at most {MAX_QUERY} printable characters")
    users, following = await issuer(request).users.page(query=query, cursor=cursor, limit=limit)
    return no_store(JSONResponse({"users": [u.public() for u in users], "next_cursor": following}))


async def show_user(request: Request) -> Response:
    await admin_caller(request, changes=False)
    return no_store(JSONResponse((await _target(request)).public()))


async def set_roles(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
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
    if updated is None:  # deleted meanwhile
        raise NotFound("no such user")
    await app.sessions.update_all(updated)
    log.info("admin %s set roles of %s: %s", caller.user.id, user.id, " ".join(sorted(roles)))
    return no_store(JSONResponse(updated.public()))


async def suspend(request: Request) -> Response:
    return await _set_status(request, SUSPENDED)


async def reactivate(request: Request) -> Response:
    return await _set_status(request, ACTIVE)


async def _set_status(request: Request, status: str) -> Response:
    caller = await admin_caller(request, changes=True)
    user = await _target(request)
    app = issuer(request)
    ended = await app.set_status(user, status, actor=caller.user.id)
    log.info("admin %s set %s %s (%d session(s) ended)", caller.user.id, user.id, status, ended)
    refreshed = await app.users.get(user.id)
    if refreshed is None:  # deleted meanwhile
        raise NotFound("no such user")
    return no_store(JSONResponse(refreshed.public()))


async def delete_user(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
    user = await _target(request)
    await issuer(request).delete_user(user, actor=caller.user.id)
    log.info("admin %s deleted %s", caller.user.id, user.id)
    return no_store(Response(status_code=204))
