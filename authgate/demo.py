"""`bin/demo`: authgate on one machine, end to end.

Starts the verifier and nginx (from nginx/templates/example.conf.template, with its demo
upstream), signs demo tokens with a local key, writes two demo sessions to Redis, and
prints the URLs with curl commands to try. Ctrl-C stops everything. `--check` makes the
sample requests itself, prints what came back, and exits non-zero if any answer is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import redis
import redis.asyncio as aioredis

from .config import redact_url
from .nginx import NGINX_DIR, Nginx, free_port, wait_for_port
from .sessions import write_session
from .signing import SigningKey, access_token_claims, jwks, new_session_id

ISSUER = "http://127.0.0.1:9180"  # where authgate-issuer will run; not part of the demo yet
AUDIENCE = "authgate-demo"
RUNTIME = Path(__file__).resolve().parent.parent / "run" / "demo"
DEMO_USERS = {"alice": "admin", "bob": "viewer"}  # user → role
DEMO_LIFETIME = 8 * 3600  # seconds, for the demo sessions and tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bin/demo", description=__doc__.splitlines()[0])
    parser.add_argument("--nginx-port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--verifier-port", type=int, default=9181, help="0 picks a free port")
    parser.add_argument("--upstream-port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument(
        "--redis-url", default=os.environ.get("AUTHGATE_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--check", action="store_true", help="make the sample requests, then exit")
    args = parser.parse_args(argv)
    ports = {
        name: getattr(args, name) or free_port()
        for name in ("nginx_port", "verifier_port", "upstream_port")
    }

    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        where = redact_url(args.redis_url)
        sys.exit(f"demo: no Redis at {where} ({exc}); start one or set AUTHGATE_REDIS_URL")

    RUNTIME.mkdir(parents=True, exist_ok=True)
    key = _demo_key(RUNTIME / "signing-key.pem")
    (RUNTIME / "jwks.json").write_text(json.dumps(jwks([key]), indent=2))
    sids = {sub: new_session_id() for sub in DEMO_USERS}
    alice, bob = sids["alice"], sids["bob"]
    asyncio.run(_write_sessions(args.redis_url, sids))

    def token(sid: str, sub: str) -> str:
        claims = access_token_claims(
            issuer=ISSUER,
            audience=AUDIENCE,
            sub=sub,
            sid=sid,
            client_id="demo",
            lifetime=DEMO_LIFETIME,
        )
        return key.sign(claims)

    base = f"http://127.0.0.1:{ports['nginx_port']}"
    env = {
        **os.environ,
        "AUTHGATE_ISSUER": ISSUER,
        "AUTHGATE_AUDIENCE": AUDIENCE,
        "AUTHGATE_REDIS_URL": args.redis_url,
        "AUTHGATE_JWKS_FILE": str(RUNTIME / "jwks.json"),
        "AUTHGATE_POLICY_FILE": str(NGINX_DIR / "example-policy.yml"),
        "AUTHGATE_LOGIN_URL": f"{ISSUER}/login",
        "AUTHGATE_SESSION_COOKIE": "authgate_session",
    }
    with tempfile.TemporaryFile() as verifier_log:
        command = Path(sys.executable).parent / "authgate-verifier"
        verifier = subprocess.Popen(  # noqa: S603 - our own entry point
            [str(command), "--port", str(ports["verifier_port"])],
            env=env,
            stdout=verifier_log,
            stderr=subprocess.STDOUT,
        )
        nginx = Nginx(
            RUNTIME / "nginx",
            NGINX_DIR / "templates" / "example.conf.template",
            {
                "AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{ports['nginx_port']}",
                "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{ports['verifier_port']}",
                "AUTHGATE_UPSTREAM_ADDR": f"127.0.0.1:{ports['upstream_port']}",
                "AUTHGATE_DEMO_UPSTREAM_LISTEN": f"127.0.0.1:{ports['upstream_port']}",
            },
        )
        try:
            try:
                wait_for_port(ports["verifier_port"], verifier)
                nginx.start(ports["nginx_port"])
            except (RuntimeError, TimeoutError) as exc:
                verifier_log.seek(0)
                output = verifier_log.read().decode(errors="replace")
                sys.exit(f"demo: could not start: {exc}\n{output}{nginx.error_log()}")
            samples = [
                ("anyone, a public page", "/public/hello", None, 200),
                ("anyone, a protected page (browser: sent to login)", "/docs/", None, 302),
                ("anyone, the API (401 with WWW-Authenticate)", "/api/items", None, 401),
                ("alice (admin), the admin area", "/admin/", token(alice, "alice"), 200),
                ("bob (viewer), the admin area", "/admin/", token(bob, "bob"), 403),
                ("bob, a protected page", "/docs/", token(bob, "bob"), 200),
            ]
            print(f"\nauthgate demo: nginx on {base}")
            print(f"  verifier: http://127.0.0.1:{ports['verifier_port']} (/metrics, /readyz)")
            print(f"  demo upstream: http://127.0.0.1:{ports['upstream_port']}\n")
            print(f"alice (roles: admin):  export ALICE='{token(alice, 'alice')}'")
            print(f"bob (roles: viewer):   export BOB='{token(bob, 'bob')}'\n")
            failures = 0
            for label, path, tok, expected in samples:
                auth = (
                    f' -H "Authorization: Bearer ${"ALICE" if tok and "alice" in label else "BOB"}"'
                    if tok
                    else ""
                )
                print(f"  {label}\n    curl -i{auth} {base}{path}")
                if args.check:
                    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
                    status = httpx.get(base + path, headers=headers).status_code
                    mark = "ok" if status == expected else f"WRONG (expected {expected})"
                    failures += status != expected
                    print(f"    -> {status} {mark}")
            print("\n  Revoke alice's session everywhere, at once:")
            print(f"    redis-cli DEL authgate:session:{alice}")
            print(f"    redis-cli PUBLISH authgate:session-events {alice}")
            if args.check:
                sys.exit(1 if failures else 0)
            print("\nCtrl-C stops the demo.")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            nginx.stop()
            verifier.terminate()
            verifier.wait(timeout=10)


def _demo_key(path: Path) -> SigningKey:
    """The demo's signing key, made on first run and kept, so printed tokens stay valid."""
    if path.exists():
        return SigningKey.from_pem(path.read_bytes(), kid="demo-key")
    key = SigningKey.generate("EdDSA", kid="demo-key")
    path.write_bytes(key.to_pem())
    path.chmod(0o600)
    return key


async def _write_sessions(redis_url: str, sids: dict[str, str]) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        for sub, role in DEMO_USERS.items():
            await write_session(
                client,
                sids[sub],
                sub=sub,
                ttl=DEMO_LIFETIME,
                roles=[role],
                email=f"{sub}@example.test",
                name=sub.title(),
            )
    finally:
        await client.aclose()


if __name__ == "__main__":
    main()
