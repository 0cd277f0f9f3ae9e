"""`authgate-issuer`: serve (default), `keys rotate`, `keys list`, `admin promote USER`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import uvicorn

from authgate import redis_client
from authgate.config import ConfigError, redact_url, to_environ
from authgate.logs import configure_logging
from authgate.serving import UVICORN

from .settings import OPTIONS, Settings, load_settings

if TYPE_CHECKING:
    from .keys import KeyStore

log = logging.getLogger("authgate.issuer")
USAGE = """usage: authgate-issuer [serve] [--flags]        run the issuer
       authgate-issuer keys rotate [--flags]      add a signing key; retire the current one later
       authgate-issuer keys list [--flags]        show the signing keys and their times
       authgate-issuer admin promote USER [--flags]   give USER (an id or email) the admin role
       authgate-issuer events relay [--flags]     publish the event outbox (when not in serve)
       authgate-issuer events tail [--routing-key PATTERN] [--flags]   print events as they flow
       authgate-issuer clients VERB … [--json] [--flags]   service accounts (clients --help)
       authgate-issuer migrate-keys [--end-sessions] [--flags]   carry data from before the
                                                  shards to its keys (docs/scaling.md)
Flags and AUTHGATE_* variables: authgate-issuer --help"""


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["clients"]:
        sys.exit(clients(args[1:]))
    if args[:1] == ["migrate-keys"]:
        sys.exit(migrate_keys(args[1:]))
    command: list[str] = []
    while args and not args[0].startswith("-") and len(command) < 2 and args[0] in (
        "serve", "keys", "admin", "rotate", "list", "promote", "events", "relay", "tail"
    ):  # fmt: skip
        command.append(args.pop(0))
    pattern = "#"
    if command == ["events", "tail"] and "--routing-key" in args:
        at = args.index("--routing-key")
        if at + 1 >= len(args):
            print("authgate-issuer: --routing-key needs a pattern", file=sys.stderr)
            sys.exit(2)
        pattern = args[at + 1]
        del args[at : at + 2]
    target = (
        args.pop(0)
        if command == ["admin", "promote"] and args and not args[0].startswith("-")
        else None
    )
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"authgate-issuer: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    if command in ([], ["serve"]):
        serve(settings)
    elif command == ["keys", "rotate"]:
        rotate_keys(settings)
    elif command == ["keys", "list"]:
        list_keys(settings)
    elif command == ["admin", "promote"] and target:
        sys.exit(asyncio.run(promote(settings, target)))
    elif command == ["events", "relay"]:
        sys.exit(run_relay(settings))
    elif command == ["events", "tail"]:
        from .tail import run

        sys.exit(run(settings.amqp_url, settings.events_exchange, pattern))
    else:
        print(USAGE, file=sys.stderr)
        sys.exit(2)


def clients(args: list[str]) -> int:
    """`clients …` (issuer/clients_cli.py): 0 done, 1 refused or failed, 2 bad usage."""
    from . import clients_cli

    if not args or args[0] in ("-h", "--help"):
        print(clients_cli.__doc__)
        return 0 if args else 2
    ns, rest = clients_cli.split(args)
    try:
        settings = load_settings(rest)
    except ConfigError as exc:
        print(f"authgate-issuer: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return asyncio.run(clients_cli.run(settings, ns))


def migrate_keys(args: list[str]) -> int:
    """`migrate-keys` (issuer/migrate.py): 0 done, 1 failed, 2 bad usage or a Cluster."""
    from .migrate import migrate

    end_sessions = "--end-sessions" in args
    try:
        settings = load_settings([a for a in args if a != "--end-sessions"])
    except ConfigError as exc:
        print(f"authgate-issuer: {exc}", file=sys.stderr)
        return 2
    if redis_client.parse(settings.redis_url).topology == "cluster":
        print("authgate-issuer: migrate-keys runs where the old data is (standalone Redis or "
              "Sentinel: releases before the shards refused a Cluster), then copy it over",
              file=sys.stderr)  # fmt: skip
        return 2

    async def main() -> dict[str, int]:
        client = redis_client.connect(settings.redis_url)
        try:
            return await migrate(client, end_sessions=end_sessions)
        finally:
            await client.aclose()

    done = asyncio.run(main())
    print(f"migrate-keys: {sum(done.values())} key(s) handled" if any(done.values())
          else "migrate-keys: nothing from before the shards")  # fmt: skip
    return 0


def serve(settings: Settings) -> None:
    os.environ.update(to_environ(OPTIONS, settings))
    log.info("issuer on http://%s:%d, public URL %s, redis %s", settings.host, settings.port,
             settings.public_url, redact_url(settings.redis_url))  # fmt: skip
    uvicorn.run(
        "issuer.app:create_app_from_env", factory=True, host=settings.host, port=settings.port,
        **UVICORN,
    )  # fmt: skip


def _key_store(settings: Settings) -> KeyStore:
    """The keys directory, complete: a first signing key and the device-cookie secret
    made when missing, so a directory prepared here can be mounted read-only (compose's
    secrets) and shared by every issuer replica."""
    from .devices import load_secret
    from .keys import KeyStore

    store = KeyStore(settings.keys_dir)
    store.ensure(settings.signing_algorithm)
    load_secret(settings.keys_dir)
    return store


def rotate_keys(settings: Settings) -> None:
    store = _key_store(settings)
    # Verifiers refetch the JWKS at least every 300 s (their default) and on an unknown
    # kid; publishing that long ahead means none meets a token signed by a key it lacks.
    ahead = 300
    longest = max(settings.session_ttl, settings.access_token_ttl)
    entry = store.rotate(
        settings.signing_algorithm, publish_ahead=ahead, longest_token_life=longest
    )
    print(f"new key {entry.kid}: published now, signs from {_when(entry.signs_from)};"
          f" the previous key retires {_when(entry.signs_from + longest)}")  # fmt: skip


def list_keys(settings: Settings) -> None:
    store = _key_store(settings)
    for entry in store.entries():
        retire = _when(entry.retire_at) if entry.retire_at else "-"
        signs = _when(entry.signs_from)
        print(f"{entry.kid}  {entry.algorithm}  signs from {signs}  retires {retire}")


async def promote(settings: Settings, ref: str) -> int:
    """Bootstrap an admin: the user must have signed in once."""
    from .core import Core

    core = Core(settings)
    try:
        found = await core.users.find(ref)
        if len(found) != 1:
            what = (
                "no user" if not found else f"{len(found)} users ({', '.join(u.id for u in found)})"
            )
            print(f"authgate-issuer: {what} match {ref!r}; give a user id", file=sys.stderr)
            return 1
        user = found[0]
        await core.users.set_roles(user.id, user.roles | {"admin"}, actor="cli")
        updated = await core.users.get(user.id)
        if updated is not None:
            await core.sessions.update_all(updated)
        print(f"{user.id} ({user.email or user.name}) now has the admin role")
        return 0
    finally:
        await core.close()


def run_relay(settings: Settings) -> int:
    """The outbox relay alone, for deployments that run it apart from the issuer."""

    from .relay import Relay

    async def main() -> None:
        client = redis_client.connect(settings.redis_url)
        relay = Relay(
            client,
            settings.amqp_url,
            settings.events_exchange,
            claim_idle=settings.relay_claim_idle,
        )
        try:
            await relay.run()
        finally:
            await client.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
