"""`bin/demo`: authgate on one machine, end to end.

Starts the issuer (local accounts on), the verifier and nginx (from
nginx/templates/example.conf.template, with its demo upstream), makes two demo users
with sessions, and prints the URLs with curl commands to try; in a browser, a protected
page sends you to sign in and back. Ctrl-C stops everything. `--check` makes the sample
requests itself (a browser sign-up included), prints what came back, and exits
non-zero if any answer is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx

from . import services
from .nginx import NGINX_DIR, Nginx
from .processes import Child, StartFailed, free_port, listening, run_stoppable

RUNTIME = Path(__file__).resolve().parent.parent / "run" / "demo"
AUDIENCE = "authgate"
DEMO_USERS = {"alice": "admin", "bob": "viewer"}  # user → role
DEMO_LIFETIME = 8 * 3600  # seconds, for the demo tokens
BIN = Path(sys.executable).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.splitlines()[0])
    for name, default in (
        ("nginx", 8080),
        ("issuer", 9180),
        ("verifier", 9181),
        ("upstream", 8081),
    ):
        parser.add_argument(f"--{name}-port", type=int, default=default, help="0 picks a free port")
    services.add_arguments(parser, "redis", "amqp")
    parser.add_argument("--check", action="store_true", help="make the sample requests, then exit")
    args = parser.parse_args(argv)
    return run_stoppable(lambda: run(args), "demo")


def run(args: argparse.Namespace) -> int:
    port = {
        n: getattr(args, f"{n}_port") or free_port()
        for n in ("nginx", "issuer", "verifier", "upstream")
    }
    base, issuer = f"http://127.0.0.1:{port['nginx']}", f"http://127.0.0.1:{port['issuer']}"
    RUNTIME.mkdir(parents=True, exist_ok=True)
    with services.running(args, "redis", "amqp") as urls, ExitStack() as stack:
        common = {**os.environ, "AUTHGATE_REDIS_URL": urls["redis"],
                  "AUTHGATE_AMQP_URL": urls["amqp"], "AUTHGATE_AUDIENCE": AUDIENCE}  # fmt: skip
        issuer_env = {
            **common,
            "AUTHGATE_PUBLIC_URL": issuer,
            "AUTHGATE_KEYS_DIR": str(RUNTIME / "issuer-keys"),
            "AUTHGATE_RETURN_ORIGINS": base,
            "AUTHGATE_LOCAL_ACCOUNTS": "true",
        }
        verifier_env = {
            **common,
            "AUTHGATE_ISSUER": issuer,
            "AUTHGATE_JWKS_URL": f"{issuer}/.well-known/jwks.json",
            "AUTHGATE_POLICY_FILE": str(NGINX_DIR / "example-policy.yml"),
            "AUTHGATE_LOGIN_URL": f"{issuer}/login",
            "AUTHGATE_SESSION_COOKIE": "authgate_session",
        }
        tokens = asyncio.run(_demo_users(issuer_env))
        _start(stack, "issuer", port["issuer"], issuer_env)
        _start(stack, "verifier", port["verifier"], verifier_env)
        nginx = Nginx(
            RUNTIME / "nginx",
            NGINX_DIR / "templates" / "example.conf.template",
            {
                "AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{port['nginx']}",
                "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{port['verifier']}",
                "AUTHGATE_UPSTREAM_ADDR": f"127.0.0.1:{port['upstream']}",
                "AUTHGATE_DEMO_UPSTREAM_LISTEN": f"127.0.0.1:{port['upstream']}",
            },
        )
        stack.callback(nginx.stop)
        try:
            nginx.start(port["nginx"])
        except (RuntimeError, TimeoutError) as exc:
            raise StartFailed(f"nginx did not start: {exc}", nginx.error_log()) from exc
        failures = show(base, issuer, port, tokens, check=args.check)
        if args.check:
            return 1 if failures else 0
        print("\nCtrl-C stops the demo.", flush=True)
        while True:
            signal.pause()  # until a signal's handler raises


def _start(stack: ExitStack, name: str, port: int, env: dict[str, str]) -> None:
    """`authgate-{name}` on `port`, its log in run/demo/, stopped with `stack`."""
    child = Child([str(BIN / f"authgate-{name}"), "--port", str(port)],
                  log=RUNTIME / f"{name}.log", env=env)  # fmt: skip
    stack.callback(child.stop)
    child.wait_until(lambda: listening(port), f"authgate-{name}", 30)


def show(
    base: str, issuer: str, port: dict[str, int], tokens: dict[str, tuple[str, str]], *, check: bool
) -> int:
    """Print what to try; with `check`, try it and count the wrong answers."""
    alice, bob = tokens["alice"][0], tokens["bob"][0]
    print(f"\nauthgate demo: open {base}/docs/ in a browser: you are sent to sign in (create an")
    print("account there), then back. Also running:")
    print(f"  issuer:   {issuer}/login  (keys at /.well-known/jwks.json)")
    print(f"  verifier: http://127.0.0.1:{port['verifier']}  (/metrics, /readyz)")
    print(f"  demo upstream: http://127.0.0.1:{port['upstream']}\n")
    print(f"alice (roles: admin):  export ALICE='{alice}'")
    print(f"bob (roles: viewer):   export BOB='{bob}'\n")
    samples = [
        ("anyone, a public page", "/public/hello", None, 200),
        ("anyone, a protected page (browser: sent to login)", "/docs/", None, 302),
        ("anyone, the API (401 with WWW-Authenticate)", "/api/items", None, 401),
        ("alice (admin), the admin area", "/admin/", "ALICE", 200),
        ("bob (viewer), the admin area", "/admin/", "BOB", 403),
        ("bob, a protected page", "/docs/", "BOB", 200),
    ]
    failures = 0
    for label, path, who, expected in samples:
        auth = f' -H "Authorization: Bearer ${who}"' if who else ""
        print(f"  {label}\n    curl -i{auth} {base}{path}")
        if check:
            headers = {"Authorization": f"Bearer {alice if who == 'ALICE' else bob}"} if who else {}
            failures += _report(httpx.get(base + path, headers=headers).status_code, expected)
    print("\n  End alice's session everywhere, at once (what logout and admin actions do):")
    print(f"    redis-cli DEL authgate:session:{tokens['alice'][1]}")
    print(f"    redis-cli PUBLISH authgate:session-events {tokens['alice'][1]}")
    if check:
        print("\n  a browser signs up at the issuer, signs in and comes back to /docs/")
        failures += _report(_browser_sign_up(base), 200)
    return failures


def _report(status: int, expected: int) -> int:
    print(f"    -> {status} {'ok' if status == expected else f'WRONG (expected {expected})'}")
    return int(status != expected)


def _browser_sign_up(base: str) -> int:
    """What a person does in a browser: protected page → sign-in page → sign up → sign in
    (registration signs nobody in: it answers alike whether the email was taken) → back."""
    with httpx.Client(follow_redirects=True, timeout=15) as browser:
        login = browser.get(f"{base}/docs/")
        email, password = f"demo-{secrets.token_hex(4)}@example.test", secrets.token_urlsafe(16)
        form = {"email": email, "name": "Demo", "password": password,
                "rd": str(login.url.params.get("rd", ""))}  # fmt: skip
        for action in ("/register", "/login/local"):
            form["login_csrf"] = login.text.split('name="login_csrf" value="')[1].split('"')[0]
            login = browser.post(str(login.url.copy_with(path=action, query=None)), data=form)
        return login.status_code if str(login.url).startswith(base) else 0


async def _demo_users(issuer_env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """alice and bob as issuer users with a session each; name → (access token, sid)."""
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
            made[name] = (
                core.tokens.access_token(user, session.sid, "demo", "", DEMO_LIFETIME),
                session.sid,
            )
    finally:
        await core.close()
    return made


if __name__ == "__main__":
    sys.exit(main())
