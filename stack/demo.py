"""`bin/demo`: authgate on one machine, the whole path.

Starts Redis and RabbitMQ if none answer (`stack/services.py`), the issuer (local
accounts on), the verifier, the member service (`examples/members`), `authgate-gateway
serve kong/kong.yml` standing in for Kong, and nginx in front of them all
(`nginx/templates/stack.conf.template`): the topology compose runs, with each host name
on loopback (`stack/topology.py`). Makes two demo users, prints what to try, and waits;
Ctrl-C stops everything. `--check` walks the whole path itself (`stack/walk.py`) and
exits non-zero if any answer is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import services, topology
from .nginx import NGINX_DIR, Nginx
from .processes import Child, StartFailed, free_port, listening, run_stoppable
from .walk import DemoUser, Walk, walk

REPO = Path(__file__).resolve().parent.parent
RUNTIME = REPO / "run" / "demo"
AUDIENCE = "authgate"
DEMO_USERS = {"alice": "admin", "bob": "viewer"}  # user → role
DEMO_LIFETIME = 8 * 3600  # seconds, for the demo tokens
BIN = Path(sys.executable).parent
PORTS = {"nginx": topology.PORTS["nginx"], "issuer": topology.PORTS["issuer"],
         "verifier": topology.PORTS["verifier"], "gateway": topology.PORTS["kong"],
         "members": topology.PORTS["members"], "upstream": 8082}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--check", action="store_true", help="walk the whole path, then exit")
    args = parser.parse_args(argv)
    return run_stoppable(lambda: run(args), "demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `assembled` reads: a port for each part, Redis and RabbitMQ."""
    for name, default in PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=default, help="0 picks a free port")
    services.add_arguments(parser, "redis", "amqp")


@dataclass(frozen=True)
class Stack:
    """The whole path, running: nginx's URL, each part's port, the demo users."""

    base: str
    port: dict[str, int]
    users: dict[str, DemoUser]
    issuer_env: dict[str, str]


def run(args: argparse.Namespace) -> int:
    with assembled(args) as stack:
        members = f"http://127.0.0.1:{stack.port['members']}"
        failures = walk(Walk(stack.base, members, stack.users, stack.issuer_env,
                             check=args.check))  # fmt: skip
        if args.check:
            return 1 if failures else 0
        print("\nCtrl-C stops the demo.", flush=True)
        while True:
            signal.pause()  # until a signal's handler raises


@contextmanager
def assembled(args: argparse.Namespace) -> Iterator[Stack]:
    """Every part started (Redis and RabbitMQ too, when none answer), and stopped again
    on the way out, however it is left."""
    port = {name: getattr(args, f"{name}_port") or free_port() for name in PORTS}
    base = f"http://127.0.0.1:{port['nginx']}"  # the issuer's public URL too: one origin
    RUNTIME.mkdir(parents=True, exist_ok=True)
    with services.running(args, "redis", "amqp") as urls, ExitStack() as stack:
        common = {**os.environ, "AUTHGATE_REDIS_URL": urls["redis"],
                  "AUTHGATE_AMQP_URL": urls["amqp"], "AUTHGATE_AUDIENCE": AUDIENCE}  # fmt: skip
        issuer_env = {
            **common,
            "AUTHGATE_PUBLIC_URL": base,
            "AUTHGATE_KEYS_DIR": str(RUNTIME / "issuer-keys"),
            "AUTHGATE_RETURN_ORIGINS": base,
            "AUTHGATE_LOCAL_ACCOUNTS": "true",
            "AUTHGATE_TRUSTED_PROXIES": "127.0.0.1",  # nginx and the gateway, on loopback
        }
        verifier_env = {
            **common,
            "AUTHGATE_ISSUER": base,
            "AUTHGATE_JWKS_URL": f"http://127.0.0.1:{port['issuer']}/.well-known/jwks.json",
            "AUTHGATE_POLICY_FILE": str(NGINX_DIR / "example-policy.yml"),
            "AUTHGATE_LOGIN_URL": f"{base}/login",
            "AUTHGATE_SESSION_COOKIE": "authgate_session",
        }
        members_env = {**os.environ, "MEMBERS_DB": str(RUNTIME / "members.db"),
                       "MEMBERS_AMQP_URL": urls["amqp"]}  # fmt: skip
        users = asyncio.run(_demo_users(issuer_env))
        _start(stack, "issuer", [str(BIN / "authgate-issuer")], port["issuer"], issuer_env)
        _start(stack, "verifier", [str(BIN / "authgate-verifier")], port["verifier"], verifier_env)
        _start(stack, "members", [sys.executable, "-m", "examples.members"], port["members"],
               members_env, cwd=REPO)  # fmt: skip
        gateway = [str(BIN / "authgate-gateway"), "serve", str(_kong_yml(port, urls["redis"]))]
        _start(stack, "gateway", gateway, port["gateway"], dict(os.environ))
        nginx = Nginx(
            RUNTIME / "nginx",
            NGINX_DIR / "templates" / "stack.conf.template",
            {
                # compose's values, the topology's names on this machine's ports...
                **topology.nginx_values({"verifier": port["verifier"], "kong": port["gateway"]}),
                # ...and what is different here: nginx on loopback, the page's port free.
                "AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{port['nginx']}",
                "AUTHGATE_UPSTREAM_ADDR": f"127.0.0.1:{port['upstream']}",
                "AUTHGATE_DEMO_UPSTREAM_LISTEN": f"127.0.0.1:{port['upstream']}",
            },
        )
        stack.callback(nginx.stop)
        try:
            nginx.start(port["nginx"])
        except (RuntimeError, TimeoutError) as exc:
            raise StartFailed(f"nginx did not start: {exc}", nginx.error_log()) from exc
        print(f"  nginx {base}  →  verifier :{port['verifier']}  →  gateway :{port['gateway']}"
              f"  →  members :{port['members']}, issuer :{port['issuer']}")  # fmt: skip
        yield Stack(base, port, users, issuer_env)


def _kong_yml(port: dict[str, int], redis_url: str) -> Path:
    """kong/kong.yml as this machine runs it: every host name of the topology on
    loopback, the idempotency plugin on the Redis the demo uses."""
    text = (REPO / "kong" / "kong.yml").read_text()
    text = re.sub(r"redis://redis:\d+/\d+", redis_url, text)
    text = topology.on_loopback(text, {"issuer": port["issuer"], "members": port["members"]})
    path = RUNTIME / "kong.yml"
    path.write_text(text)
    return path


def _start(
    stack: ExitStack,
    name: str,
    argv: list[str],
    port: int,
    env: dict[str, str],
    cwd: Path | None = None,
) -> None:
    """`argv --port port`, its log in run/demo/, stopped with `stack`."""
    if listening(port):  # else the wait below would take another program for ours
        raise StartFailed(f"{name}: port {port} is in use (choose another: --{name}-port)", "")
    child = Child([*argv, "--port", str(port)], log=RUNTIME / f"{name}.log", env=env, cwd=cwd)
    stack.callback(child.stop)
    child.start().wait_until(lambda: listening(port), name, 30)


async def _demo_users(issuer_env: dict[str, str]) -> dict[str, DemoUser]:
    """alice and bob as issuer users with a session each."""
    from issuer.core import Core
    from issuer.providers import Identity
    from issuer.settings import load_settings

    core = Core(load_settings(environ=issuer_env))
    made = {}
    try:
        for name, role in DEMO_USERS.items():
            user, _ = await core.users.upsert(
                Identity("demo", name, f"{name}@example.test", True, name.title())
            )
            await core.users.set_roles(user.id, frozenset({role}), actor="demo")
            user = await core.users.get(user.id) or user
            session = await core.sessions.create(user, "demo")
            if session is None:
                raise RuntimeError(f"demo user {name} is not active")
            made[name] = DemoUser(
                core.tokens.access_token(user, session.sid, "demo", "", DEMO_LIFETIME),
                session.sid,
                user.id,
            )
    finally:
        await core.close()
    return made


if __name__ == "__main__":
    sys.exit(main())
