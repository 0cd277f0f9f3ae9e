"""Issuer benchmark: login callbacks and refreshes per second, against a plain Starlette
endpoint doing one Redis write, side by side in one run.

    bin/bench-issuer [--duration 5] [--connections 16]

Each callback request spends its own login state (made beforehand, bound to the
pre-login cookie it sends), with the provider answering at once; each refresh request
spends its own refresh token. So both measure the real work: state check, user upsert,
session creation and token signing; refresh rotation with its Redis script.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import sys
import tempfile
from pathlib import Path

from bench.verifier import BIN, HERE, UVICORN_FLAGS, log, process, wrk
from stack import services
from stack.processes import free_port, run_stoppable

# wrk script: each request takes the next line of the file: "path\tcookie\tbody".
SCRIPT = """
local lines = {}
for line in io.lines("REQUESTS") do lines[#lines + 1] = line end
local i = 0
request = function()
  i = i + 1
  if i > #lines then i = 1 end
  local path, cookie, body = lines[i]:match("([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)")
  -- A client address per request (the issuer trusts X-Forwarded-For from loopback):
  -- the per-client rate limits run, as they would, without stopping the run.
  local ip = string.format("10.%d.%d.%d", i % 250, math.floor(i / 250) % 250, 1 + i % 7)
  local headers = {["X-Forwarded-For"] = ip}
  if cookie ~= "" then headers["Cookie"] = cookie end
  if body ~= "" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return wrk.format("POST", path, headers, body)
  end
  return wrk.format("GET", path, headers)
end
"""


async def prepare(env: dict[str, str], count: int, work: Path) -> None:
    """`count` login states (for /callback/bench) and `count` refresh tokens, made by the
    issuer's own core with the settings the benchmarked issuer gets."""
    from issuer.core import Core
    from issuer.settings import load_settings

    core = Core(load_settings(environ=env))
    redis = core.redis
    prelogin = secrets.token_urlsafe(32)
    binding = hashlib.sha256(prelogin.encode()).hexdigest()
    callbacks = []
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(count):
            state = secrets.token_urlsafe(32)
            record = {
                "provider": "bench",
                "verifier": "v",
                "nonce": "n",
                "rd": "/",
                "binding": binding,
            }
            pipe.set(f"authgate:login-state:{state}", json.dumps(record), ex=3600)
            callbacks.append(
                f"/callback/bench?code=user{n % 500}&state={state}\tauthgate_prelogin={prelogin}\t"
            )
        await pipe.execute()
    (work / "callbacks.txt").write_text("\n".join(callbacks) + "\n")

    users, sessions, tokens = core.users, core.sessions, core.tokens
    from issuer.providers import Identity

    user, _ = await users.upsert(Identity("bench", "refresher", "r@bench.test", True, "R"))
    session = await sessions.create(user, "bench")
    assert session is not None  # a new, active user
    lines = []
    for _ in range(count):
        pair = await tokens.issue(user, session, "bench")
        lines.append(f"/token\t\tgrant_type=refresh_token&refresh_token={pair['refresh_token']}")
    (work / "refreshes.txt").write_text("\n".join(lines) + "\n")
    await core.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per target (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    services.add_arguments(parser, "redis", "amqp")
    args = parser.parse_args()
    return run_stoppable(lambda: run(args), "bench-issuer")


def run(args: argparse.Namespace) -> None:
    with (
        services.running(args, "redis", "amqp") as urls,
        tempfile.TemporaryDirectory(prefix="authgate-bench-") as tmp,
    ):
        args.redis_url = urls["redis"]
        work = Path(tmp)
        port = free_port()
        count = 4000 * args.duration
        log(f"bench: preparing {count} login states and {count} refresh tokens")
        env = {"AUTHGATE_REDIS_URL": args.redis_url, "AUTHGATE_AMQP_URL": urls["amqp"],
               "AUTHGATE_KEYS_DIR": str(work / "keys"),
               "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}", "AUTHGATE_LOG_LEVEL": "WARNING",
               "AUTHGATE_TRUSTED_PROXIES": "127.0.0.1"}  # fmt: skip
        asyncio.run(prepare(env, count, work))
        results = {}
        targets = [
            (
                "baseline: Starlette + one Redis write",
                "bench.issuer_targets:baseline",
                "/write",
                None,
            ),
            ("issuer: login callback", "bench.issuer_targets:issuer", "/", "callbacks.txt"),
            ("issuer: refresh (rotation)", "bench.issuer_targets:issuer", "/", "refreshes.txt"),
        ]
        for name, app, path, requests in targets:
            port = free_port() if app.endswith("baseline") else port
            argv = [
                str(BIN / "uvicorn"),
                app,
                "--app-dir",
                str(HERE.parent),
                "--port",
                str(port),
                *UVICORN_FLAGS,
            ]
            extra: list[str] = []
            if requests:
                script = work / f"{requests}.lua"
                script.write_text(SCRIPT.replace("REQUESTS", str(work / requests)))
                extra = ["-s", str(script)]
            with process(argv, port, env):
                log(f"bench: {name} ...")
                rps, p99, sent, bad = wrk(f"http://127.0.0.1:{port}{path}", args, extra)
            if requests and sent > count:
                log(
                    f"bench: note: {name} sent {sent} requests for {count} prepared; repeats failed"
                )
            results[name] = (rps, p99, bad)
        base = results[targets[0][0]][0]
        print(
            f"\nissuer benchmark: wrk 1 thread, {args.connections} connections,"
            f" {args.duration}s each\n"
        )
        print(f"{'target':<40}{'req/s':>9}{'p99 ms':>9}{'non-2xx/3xx':>13}{'vs baseline':>13}")
        for name, (rps, p99, bad) in results.items():
            print(f"{name:<40}{rps:>9.0f}{p99:>9.2f}{bad:>13}{rps / base:>13.2f}")


if __name__ == "__main__":
    sys.exit(main())
