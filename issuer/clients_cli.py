"""`authgate-issuer clients …`: service accounts from the command line, like decK.

    clients create NAME [--device] [--role R]… [--scope S]… [--jwk FILE|-] [--jwks-url URL]
    clients list | show ID | suspend ID | reactivate ID | delete ID
    clients add-secret ID | add-key ID (--jwk FILE|- | --jwks-url URL)
    clients remove-credential ID CREDENTIAL

`--json` prints the result as JSON (a new secret included: it is shown once). Exit codes:
0 done, 1 refused or failed (a line on stderr says why), 2 bad usage. Talks to Redis
directly with the issuer's settings (the flags and AUTHGATE_* variables of `serve`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .client_admin import NewClient, add_credential, create, parse_grants
from .clients import DEVICE, JWK, JWKS_URL, SECRET, SERVICE, Client
from .core import Core
from .errors import IssuerError
from .settings import Settings
from .users import ACTIVE, SUSPENDED

VERBS = ("create", "list", "show", "suspend", "reactivate", "delete", "add-secret", "add-key",
         "remove-credential")  # fmt: skip
ACTOR = "cli"


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="authgate-issuer clients", add_help=False)
    parse.add_argument("verb", choices=VERBS)
    parse.add_argument("target", nargs="*", help="NAME (create), or ID [CREDENTIAL]")
    parse.add_argument("--device", action="store_true", help="a public device-flow client")
    parse.add_argument("--role", action="append", default=[])
    parse.add_argument("--scope", action="append", default=[])
    parse.add_argument("--jwk", help="a public JWK file for private_key_jwt; - for stdin")
    parse.add_argument("--jwks-url", help="a JWKS URL for private_key_jwt")
    parse.add_argument("--json", action="store_true", help="print JSON")
    return parse


def split(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(this command's arguments, the rest for the settings); SystemExit(2) on bad usage."""
    return parser().parse_known_args(args)


async def run(settings: Settings, ns: argparse.Namespace) -> int:
    core = Core(settings, signs=False)  # accounts only: no keys needed, none made
    try:
        result = await _act(core, ns)
    except (IssuerError, LookupError, ValueError, OSError) as exc:
        text = exc.description if isinstance(exc, IssuerError) else str(exc)
        if isinstance(exc, LookupError):
            text = f"no such client or credential: {exc}"
        print(f"authgate-issuer clients: {text}", file=sys.stderr)
        return 1
    finally:
        await core.close()
    _print(result, ns.json)
    return 0


def _credential_spec(ns: argparse.Namespace) -> dict[str, Any] | None:
    if ns.jwk and ns.jwks_url:
        raise ValueError("give --jwk or --jwks-url, not both")
    if ns.jwk:
        text = sys.stdin.read() if ns.jwk == "-" else Path(ns.jwk).read_text(encoding="utf-8")
        try:
            return {"type": JWK, "jwk": json.loads(text)}
        except json.JSONDecodeError as exc:
            raise ValueError(f"--jwk: not JSON: {exc}") from None
    if ns.jwks_url:
        return {"type": JWKS_URL, "jwks_url": ns.jwks_url}
    return None


def _one(ns: argparse.Namespace, count: int = 1) -> list[str]:
    if len(ns.target) != count:
        raise ValueError(f"{ns.verb} takes {count} argument(s)")
    return list(ns.target)


async def _client(core: Core, cid: str) -> Client:
    client = await core.clients.get(cid)
    if client is None:
        raise LookupError(cid)
    return client


async def _act(core: Core, ns: argparse.Namespace) -> Any:
    clients = core.clients
    if ns.verb == "create":
        (name,) = _one(ns)
        roles, scopes = parse_grants({"roles": ns.role, "scopes": ns.scope})
        kind = DEVICE if ns.device else SERVICE
        spec = _credential_spec(ns) or ({"type": SECRET} if kind == SERVICE else None)
        return await create(clients, NewClient(name, kind, roles, scopes, spec), ACTOR)
    if ns.verb == "list":
        return [c.public() for c in await clients.listed()]
    (cid, *rest) = _one(ns, 2 if ns.verb == "remove-credential" else 1)
    await _client(core, cid)
    if ns.verb in ("suspend", "reactivate"):
        await clients.set_status(cid, SUSPENDED if ns.verb == "suspend" else ACTIVE, ACTOR)
    elif ns.verb == "delete":
        await clients.delete(cid, ACTOR)
        return {"deleted": cid}
    elif ns.verb in ("add-secret", "add-key"):
        spec = {"type": SECRET} if ns.verb == "add-secret" else _credential_spec(ns)
        if spec is None:
            raise ValueError("add-key needs --jwk FILE or --jwks-url URL")
        credential, secret = await add_credential(clients, cid, spec, ACTOR)
        return {**credential, **({"client_secret": secret} if secret else {})}
    elif ns.verb == "remove-credential":
        await clients.remove_credential(cid, rest[0], ACTOR)
    return (await _client(core, cid)).public()


def _print(result: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for client in result if isinstance(result, list) else [result]:
        if "client_id" in client:
            roles = " ".join(client.get("roles", [])) or "-"
            scopes = " ".join(client.get("scopes", [])) or "-"
            print(f"{client['client_id']}  {client['kind']}  {client['status']}  "
                  f"{client['name']!r}  roles: {roles}  scopes: {scopes}")  # fmt: skip
            for credential in client.get("credentials", []):
                print(f"  credential {credential['id']}  {credential['type']}")
        elif "deleted" in client:
            print(f"deleted {client['deleted']}")
        else:
            print(f"credential {client['id']}  {client['type']}")
        if "client_secret" in client:
            print(f"client_secret: {client['client_secret']}  (shown once: keep it now)")
