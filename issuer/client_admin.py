"""Managing service accounts: what the admin API (`/admin/clients`) and the command line
(`authgate-issuer clients …`) both do, and the admin API's handlers.

Input is checked here once for both: a name, roles (as users' roles), scopes (RFC 6749
§3.3 scope tokens), and a credential — `{"type": "secret"}` (the secret is made here and
shown once), `{"type": "jwk", "jwk": {…}}` (a public key) or `{"type": "jwks_url",
"jwks_url": "https://…"}`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .admin import ROLE, admin_caller, path_target, query_params
from .client_auth import HASHER, key_of
from .clients import (
    CLIENT_ID,
    CREDENTIAL_ID,
    DEVICE,
    JWK,
    JWKS_URL,
    KINDS,
    SECRET,
    SERVICE,
    Client,
    Clients,
    new_credential_id,
    new_secret,
)
from .errors import InvalidRequest, NotFound
from .users import ACTIVE, SUSPENDED
from .web import issuer, no_store

log = logging.getLogger("authgate.issuer")
#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ); we cap the length.
SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
NAME_MAX = 100


@dataclass(frozen=True)
class NewClient:
    name: str
    kind: str
    roles: frozenset[str]
    scopes: frozenset[str]
    credential: dict[str, Any] | None


def parse_new_client(body: Any) -> NewClient:
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    unknown = sorted(set(map(str, body)) - {"name", "kind", "roles", "scopes", "credential"})
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0][:40]!r}")
    name = body.get("name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= NAME_MAX or not name.isprintable():
        raise InvalidRequest(f"name must be 1 to {NAME_MAX} printable characters")
    kind = body.get("kind", SERVICE)
    if kind not in KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(KINDS)}")
    roles, scopes = parse_grants(body)
    credential = body.get("credential")
    if credential is None and kind == SERVICE:
        credential = {"type": SECRET}
    if credential is not None and kind == DEVICE:
        raise InvalidRequest("a device client is public: it takes no credential")
    return NewClient(name.strip(), kind, roles, scopes, credential)


def parse_grants(body: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    roles, scopes = body.get("roles", []), body.get("scopes", [])
    if not isinstance(roles, list) or not all(
        isinstance(r, str) and ROLE.fullmatch(r) for r in roles
    ):
        raise InvalidRequest("roles must be a list of role names (letters, digits, _ . : -)")
    if not isinstance(scopes, list) or not all(
        isinstance(s, str) and SCOPE.fullmatch(s) for s in scopes
    ):
        raise InvalidRequest("scopes must be a list of scope tokens (RFC 6749 §3.3)")
    return frozenset(roles), frozenset(scopes)


async def add_credential(
    clients: Clients, cid: str, spec: Any, actor: str
) -> tuple[dict[str, Any], str | None]:
    """Register `spec` on the account: (the credential as shown, the secret or None)."""
    if not isinstance(spec, dict) or spec.get("type") not in (SECRET, JWK, JWKS_URL):
        raise InvalidRequest('credential must be {"type": "secret" | "jwk" | "jwks_url", …}')
    credential_id = new_credential_id()
    secret = None
    if spec["type"] == SECRET:
        secret = new_secret(credential_id)
        value: Any = await asyncio.to_thread(HASHER.hash, secret)
    elif spec["type"] == JWK:
        try:
            value = key_of(spec.get("jwk"))
        except ValueError as exc:
            raise InvalidRequest(f"jwk: {exc}") from None
    else:
        value = _jwks_url(spec.get("jwks_url"))
    try:
        credential = await clients.add_credential(cid, credential_id, spec["type"], value, actor)
    except LookupError:
        raise NotFound("no such client") from None
    return credential.public(), secret


def _jwks_url(raw: Any) -> str:
    """https, or http on loopback (a key server on this machine)."""
    parts = urlsplit(raw) if isinstance(raw, str) and len(raw) <= 2048 else None
    if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise InvalidRequest("jwks_url must be an https URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidRequest("jwks_url must be https (plain http only on loopback)")
    return str(raw)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def create(clients: Clients, new: NewClient, actor: str) -> dict[str, Any]:
    client = await clients.create(new.name, new.kind, new.roles, new.scopes, actor)
    shown = client.public()
    if new.credential is not None:
        try:
            credential, secret = await add_credential(clients, client.id, new.credential, actor)
        except InvalidRequest:
            await clients.delete(client.id, actor)  # nothing half-made is left
            raise
        shown["credentials"] = [credential]
        if secret is not None:
            shown["client_secret"] = secret
    return shown


# --- the admin API ---


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise InvalidRequest("the body must be JSON") from None


async def _target(request: Request) -> Client:
    return await path_target(request, "client", CLIENT_ID, issuer(request).clients.get)


async def list_clients(request: Request) -> Response:
    await admin_caller(request, changes=False)
    query_params(request, frozenset())
    found = await issuer(request).clients.listed()
    return no_store(JSONResponse({"clients": [c.public() for c in found]}))


async def create_client(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
    query_params(request, frozenset())
    new = parse_new_client(await _body(request))
    shown = await create(issuer(request).clients, new, caller.user.id)
    log.info("admin %s created client %s (%s)", caller.user.id, shown["client_id"], new.kind)
    return no_store(JSONResponse(shown, status_code=201))


async def show_client(request: Request) -> Response:
    await admin_caller(request, changes=False)
    return no_store(JSONResponse((await _target(request)).public()))


async def set_grants(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
    client = await _target(request)
    body = await _body(request)
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be {"roles": [...], "scopes": [...]}')
    roles, scopes = parse_grants(body)
    clients = issuer(request).clients
    ended = await clients.set_grants(client.id, roles, scopes, caller.user.id)
    log.info(
        "admin %s set grants of client %s (%d token(s) ended)", caller.user.id, client.id, ended
    )
    return await _shown(clients, client.id)


async def suspend(request: Request) -> Response:
    return await _set_status(request, SUSPENDED)


async def reactivate(request: Request) -> Response:
    return await _set_status(request, ACTIVE)


async def _set_status(request: Request, status: str) -> Response:
    caller = await admin_caller(request, changes=True)
    client = await _target(request)
    clients = issuer(request).clients
    ended = await clients.set_status(client.id, status, caller.user.id)
    log.info(
        "admin %s set client %s %s (%d token(s) ended)", caller.user.id, client.id, status, ended
    )
    return await _shown(clients, client.id)


async def delete_client(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
    client = await _target(request)
    await issuer(request).clients.delete(client.id, caller.user.id)
    log.info("admin %s deleted client %s", caller.user.id, client.id)
    return no_store(Response(status_code=204))


async def new_credential(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
    client = await _target(request)
    credential, secret = await add_credential(
        issuer(request).clients, client.id, await _body(request), caller.user.id
    )
    log.info(
        "admin %s added credential %s to client %s", caller.user.id, credential["id"], client.id
    )
    body = {**credential, **({"client_secret": secret} if secret else {})}
    return no_store(JSONResponse(body, status_code=201))


async def remove_credential(request: Request) -> Response:
    caller = await admin_caller(request, changes=True)
    client = await _target(request)
    credential_id = request.path_params["credential"]
    if not CREDENTIAL_ID.fullmatch(credential_id) or client.credential(credential_id) is None:
        raise NotFound("no such credential")
    try:
        ended = await issuer(request).clients.remove_credential(
            client.id, credential_id, caller.user.id
        )
    except LookupError:
        raise NotFound("no such credential") from None
    log.info("admin %s removed credential %s of client %s (%d token(s) ended)",
             caller.user.id, credential_id, client.id, ended)  # fmt: skip
    return no_store(Response(status_code=204))


async def _shown(clients: Clients, cid: str) -> Response:
    client = await clients.get(cid)
    if client is None:  # deleted meanwhile
        raise NotFound("no such client")
    return no_store(JSONResponse(client.public()))
