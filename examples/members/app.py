"""The member service's HTTP API (Starlette), served without the `/api` prefix the gateway
strips.

Identity comes only from the X-Auth-* headers, and they are trusted only because nginx is
the one thing that can reach this service: nginx sets them on every proxied request from
the verifier's answer, over whatever a client sent (docs/architecture.md, "Identity
headers"). Listen on loopback or a private network only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import page, problems
from .events import UserDeletedConsumer
from .problems import (
    Forbidden,
    Invalid,
    MalformedBody,
    NotFound,
    Problem,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from .settings import Settings
from .store import Member, Store

log = logging.getLogger("members.app")

USER_HEADER = "x-auth-user"
KIND_HEADER = "x-auth-kind"
CLIENT_HEADER = "x-auth-client"
#: What a service account needs to read the statistics (docs/api-clients.md).
STATS_SCOPE = "members:read"
ROLES_HEADER = "x-auth-roles"
ADMIN_ROLE = "admin"
MAX_BODY = 16 * 1024
DISPLAY_NAME_MAX = 100
BIO_MAX = 1000
FIELDS = ("display_name", "bio")


@dataclass(frozen=True)
class Caller:
    user: str
    admin: bool

    def may_change(self, member: Member) -> bool:
        return self.admin or member.owner == self.user


def caller(request: Request) -> Caller:
    users = request.headers.getlist(USER_HEADER)
    if not users or not users[0]:
        raise Unauthenticated("no X-Auth-User: this service is reached only through authgate")
    if len(users) > 1:
        # nginx sets the header exactly once; two mean the request did not come from it.
        raise Unauthenticated("X-Auth-User sent more than once")
    roles = " ".join(request.headers.getlist(ROLES_HEADER)).split()
    return Caller(users[0], ADMIN_ROLE in roles)


def service_account(request: Request) -> str:
    """The service account calling (X-Auth-Kind: client), with the statistics scope. nginx's
    policy admits only such callers to /api/stats; this checks again, as an upstream should
    not depend on one location's rule."""
    kinds, clients = request.headers.getlist(KIND_HEADER), request.headers.getlist(CLIENT_HEADER)
    if kinds != ["client"] or len(clients) != 1 or not clients[0]:
        raise Forbidden("for service accounts only (X-Auth-Kind: client)")
    if STATS_SCOPE not in request.headers.get("x-auth-scopes", "").split():
        raise Forbidden(f"the {STATS_SCOPE} scope is needed")
    return clients[0]


async def json_body(request: Request) -> Any:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {media or 'missing'}; send application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise TooLarge(f"at most {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise TooLarge(f"at most {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"not JSON: {exc}") from exc


def validate(body: Any, *, partial: bool) -> dict[str, str | None]:
    """The fields to write, or Invalid listing every error (`errors`: field, detail)."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object", errors=[])
    errors = [{"field": name, "detail": "unknown field"} for name in body if name not in FIELDS]
    if "display_name" in body or not partial:
        name = body.get("display_name")
        if not isinstance(name, str):
            errors.append({"field": "display_name", "detail": "required, a string"})
        elif not 1 <= len(name) <= DISPLAY_NAME_MAX:
            errors.append({"field": "display_name",
                           "detail": f"1 to {DISPLAY_NAME_MAX} characters"})  # fmt: skip
        elif not name.strip():
            errors.append({"field": "display_name", "detail": "must not be blank"})
    bio = body.get("bio")
    if bio is not None and not isinstance(bio, str):
        errors.append({"field": "bio", "detail": "a string or null"})
    elif bio is not None and len(bio) > BIO_MAX:
        errors.append({"field": "bio", "detail": f"at most {BIO_MAX} characters"})
    if partial and not body:
        errors.append({"field": None, "detail": f"nothing to change; send {' or '.join(FIELDS)}"})
    if errors:
        raise Invalid(f"{len(errors)} field error(s)", errors=errors)
    return {name: body[name] for name in FIELDS if name in body}


class Members:
    def __init__(self, store: Store, consumer: UserDeletedConsumer | None) -> None:
        self.store = store
        self.consumer = consumer

    async def _db(self, method: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(method, *args)
        except Exception as exc:
            log.exception("storage failed")
            raise Unavailable("the member store did not answer") from exc

    async def _mine(self, request: Request, who: Caller) -> Member:
        member_id = request.path_params["member_id"]
        member: Member | None = await self._db(self.store.get, member_id)
        if member is None:
            raise NotFound(f"no member {member_id}")
        if not who.may_change(member):
            raise Forbidden(f"member {member_id} belongs to someone else")
        return member

    async def create(self, request: Request) -> Response:
        who = caller(request)
        fields = validate(await json_body(request), partial=False)
        member: Member = await self._db(
            self.store.create, who.user, fields["display_name"], fields.get("bio")
        )
        log.info("member %s created by %s", member.id, who.user)
        # Relative, so it resolves under whatever prefix the gateway stripped (/api).
        headers = {"Location": f"members/{member.id}"}
        return JSONResponse(member.to_json(), status_code=201, headers=headers)

    async def list(self, request: Request) -> Response:
        who = caller(request)
        members: list[Member] = await self._db(self.store.list, None if who.admin else who.user)
        return JSONResponse({"members": [m.to_json() for m in members]})

    async def stats(self, request: Request) -> Response:
        """How many members there are: for a reporting job, not for people."""
        client = service_account(request)
        members: list[Member] = await self._db(self.store.list, None)
        log.info("stats read by client %s", client)
        return JSONResponse({"members": len(members)})

    async def read(self, request: Request) -> Response:
        member = await self._mine(request, caller(request))
        return JSONResponse(member.to_json())

    async def update(self, request: Request) -> Response:
        who = caller(request)
        member = await self._mine(request, who)
        fields = validate(await json_body(request), partial=True)
        updated: Member | None = await self._db(self.store.update, member.id, fields)
        if updated is None:  # deleted between the read and the write
            raise NotFound(f"no member {member.id}")
        log.info("member %s updated by %s", member.id, who.user)
        return JSONResponse(updated.to_json())

    async def delete(self, request: Request) -> Response:
        who = caller(request)
        member = await self._mine(request, who)
        if not await self._db(self.store.delete, member.id):
            raise NotFound(f"no member {member.id}")
        log.info("member %s deleted by %s", member.id, who.user)
        return Response(status_code=204)

    async def healthz(self, request: Request) -> Response:
        consumer = self.consumer.status() if self.consumer else {"state": "off"}
        try:
            await asyncio.to_thread(self.store.ping)
        except Exception:
            log.exception("health check: storage failed")
            return JSONResponse({"status": "error", "db": "error", "consumer": consumer}, 503)
        return JSONResponse({"status": "ok", "db": "ok", "consumer": consumer})


def create_app(settings: Settings, store: Store, *, consume: bool = True) -> Starlette:
    """The app over an opened `store`; with `consume`, it runs the user.deleted consumer."""
    consumer = (
        UserDeletedConsumer(
            store, settings.amqp_url, exchange=settings.exchange, queue=settings.queue
        )
        if consume
        else None
    )
    members = Members(store, consumer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(consumer.run()) if consumer else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    routes = [
        Route("/members", members.create, methods=["POST"]),
        Route("/members", members.list, methods=["GET"]),
        Route("/members/{member_id}", members.read, methods=["GET"]),
        Route("/members/{member_id}", members.update, methods=["PATCH"]),
        Route("/members/{member_id}", members.delete, methods=["DELETE"]),
        Route("/stats", members.stats, methods=["GET"]),
        Route("/healthz", members.healthz, methods=["GET"]),
        *(Route(path, page.static, methods=["GET"]) for path in page.FILES),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            Problem: problems.on_problem,
            HTTPException: problems.on_http_exception,
            Exception: problems.on_error,
        },
    )
