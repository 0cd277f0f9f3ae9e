"""Verifier benchmark: nginx (one worker) + wrk against the auth_request targets side by
side in one run, with the peer people pick instead (oauth2-proxy) and the floors.

    bin/bench [--duration 5] [--rounds 3] [--connections 32] [--targets abck...] [--svg F]

(a) nginx's floor: auth_request to an internal `return 204`
(b) the Python floor: a raw ASGI app answering 204, under uvicorn
(n) a second nginx (one worker) as the auth process, answering 204: the ceiling any auth
    process behind the same nginx can reach
(c) the verifier, cached session, bearer token (its own server, verifier/server.py)
(k) the verifier, cached session, session cookie
(u) the verifier under uvicorn (`--server uvicorn`), cached session, bearer
(w) the verifier with `--workers 2`, cached session, bearer
(d) the verifier, every token new (signature checked on every request)
(e) the seed verifier: a framework endpoint, PyJWT decode + Redis on every request
(o) oauth2-proxy v7.15.6, cookie session store, signed in (bench/oauth2_proxy.py)
(r) oauth2-proxy v7.15.6, Redis session store (a private redis-server), signed in

Python targets run under the same uvicorn settings (1 worker, httptools, uvloop, no
access log) behind the same nginx config, one after the other; per target the table
prints req/s, p50, p99 and requests per CPU-second of the auth process (its own CPU time
from /proc, every process of its group, over the measured seconds). Absolute numbers
depend on the machine; the ratios, each taken within a round, are the result.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from authgate import redis_client
from issuer.records import write_session
from issuer.signing import SigningKey, access_token_claims, jwks, new_session_id
from stack import services
from stack.nginx import Nginx, nginx_binary
from stack.processes import Child, free_port, listening, run_stoppable
from stack.services import LocalRedis

from . import oauth2_proxy, report

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ISSUER, AUDIENCE = "https://issuer.bench.test", "bench"
# The same server settings authgate-verifier runs with (verifier/cli.py), so that the
# floor and the seed differ from the verifier only in the application.
UVICORN_FLAGS = ["--http", "httptools", "--loop", "uvloop", "--no-access-log", "--workers", "1",
                 "--log-level", "warning", "--timeout-keep-alive", "75", "--no-server-header",
                 "--no-date-header", "--no-proxy-headers"]  # fmt: skip


# wrk script for (d): each request carries the next token of the file.
FRESH_TOKENS_LUA = """
local t = {}
for line in io.lines("TOKENS_FILE") do t[#t + 1] = line end
local i = 0
request = function()
  i = i + 1
  if i > #t then i = 1 end
  return wrk.format("GET", "/ok.txt", {["Authorization"] = "Bearer " .. t[i]})
end
"""


@dataclass
class Result:
    name: str
    rps: float
    p99_ms: float
    requests: int
    non_2xx: int


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[Child]:
    """`args` running (and listening on `port`) for the block; stopped after it."""
    with tempfile.NamedTemporaryFile(prefix="authgate-bench-", suffix=".log") as log_file:
        child = Child(args, log=Path(log_file.name), env={**os.environ, **(env or {})})
        try:
            child.start().wait_until(lambda: listening(port), args[0], 30)
            yield child
        finally:
            child.stop()


@dataclass(frozen=True)
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int


def wrk_run(url: str, connections: int, duration: float, extra: list[str]) -> WrkRun:
    """One wrk run (1 thread), with its latency distribution."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *extra, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def percentile(percent: int) -> float:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = found.groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkRun(rps, percentile(50), percentile(99), requests, int(bad.group(1)) if bad else 0)


def wrk(url: str, args: argparse.Namespace, extra: list[str]) -> tuple[float, float, int, int]:
    run = wrk_run(url, args.connections, args.duration, extra)
    return run.rps, run.p99_ms, run.requests, run.non_2xx


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per target (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--targets", default=ALL_TARGETS,
                        help=f"which targets to run (default {ALL_TARGETS})")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets (default 3)")
    parser.add_argument(
        "--pin", action="store_true", help="pin the target to core 1, the rest to 0"
    )
    parser.add_argument("--svg", type=Path, help="write the plot (req/s and p99 per target) here")
    services.add_arguments(parser, "redis")
    args = parser.parse_args()
    return run_stoppable(lambda: run(args), "bench")


@dataclass
class Setup:
    """What every target of a run shares: keys, a live session, tokens, nginx's files."""

    work: Path
    key: SigningKey
    sid: str
    fresh: int  # tokens minted for (d)
    lua: Path  # wrk script sending them
    verifier_env: dict[str, str]
    seed_env: dict[str, str]
    oauth2_proxy: Path | None  # the binary, when it could be had
    oauth2_redis: str | None = None  # the private Redis of its Redis store, once started

    def token(self) -> str:
        return self.key.sign(
            access_token_claims(issuer=ISSUER, audience=AUDIENCE, sub="bench-user",
                                sid=self.sid, client_id="bench", lifetime=3600)
        )  # fmt: skip

    def hot(self) -> list[str]:
        return ["-H", f"Authorization: Bearer {self.token()}"]


@dataclass(frozen=True)
class Target:
    key: str  # one letter, for --targets and the ratios
    name: str
    command: Callable[[int], list[str]] | None  # None: nginx answers itself
    path: str
    #: wrk's arguments, once the target listens on the port given (oauth2-proxy signs in).
    wrk_args: Callable[[int], list[str]]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Measured:
    key: str
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    cpu_seconds: float | None  # the auth process's, over the measured run

    @property
    def per_cpu_second(self) -> float | None:
        if not self.cpu_seconds:
            return None
        return self.requests / self.cpu_seconds


def prepare(work: Path, redis_url: str, duration: int, want_oauth2_proxy: bool) -> Setup:
    work.chmod(0o755)  # nginx workers run unprivileged and must read www/
    key = SigningKey.generate("EdDSA")
    (work / "jwks.json").write_text(json.dumps(jwks([key])))
    sid = new_session_id()

    async def seed_session() -> None:
        client = redis_client.connect(redis_url)
        await write_session(
            client, sid, sub="bench-user", ttl=3600, roles=["admin"], email="b@bench.test"
        )
        await client.aclose()

    asyncio.run(seed_session())
    verifier_env = {"AUTHGATE_ISSUER": ISSUER, "AUTHGATE_AUDIENCE": AUDIENCE,
                    "AUTHGATE_REDIS_URL": redis_url, "AUTHGATE_JWKS_FILE": str(work / "jwks.json"),
                    "AUTHGATE_LOG_LEVEL": "WARNING"}  # fmt: skip
    seed_env = {"SEED_JWKS_FILE": str(work / "jwks.json"), "SEED_ISSUER": ISSUER,
                "SEED_AUDIENCE": AUDIENCE, "SEED_REDIS_URL": redis_url}  # fmt: skip
    built = oauth2_proxy.binary(log) if want_oauth2_proxy else None
    if built is not None:
        oauth2_proxy.write_htpasswd(work / "htpasswd")
    # (d) needs a token per request: more than wrk can send in the run.
    setup = Setup(work, key, sid, 12000 * duration, work / "fresh.lua", verifier_env, seed_env,
                  built)  # fmt: skip
    log(f"bench: minting {setup.fresh} tokens for the every-token-new run")
    tokens = work / "tokens.txt"
    tokens.write_text("\n".join(setup.token() for _ in range(setup.fresh)) + "\n")
    setup.lua.write_text(FRESH_TOKENS_LUA.replace("TOKENS_FILE", str(tokens)))
    www = work / "nginx" / "www"
    for folder in ("floor", "o2p"):
        (www / folder).mkdir(parents=True)
        (www / folder / "ok.txt").write_text("ok\n")
    (www / "ok.txt").write_text("ok\n")
    return setup


ALL_TARGETS = "abnckuwdeor"

#: Target (n): a second nginx, one worker, answering every subrequest 204 over HTTP: the
#: cheapest auth process there can be, so what it reaches is the ceiling for any of them.
NGINX_204 = """worker_processes 1;
daemon off;
pid PREFIX/nginx.pid;
error_log PREFIX/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path PREFIX/client_body;
    proxy_temp_path PREFIX/proxy;
    fastcgi_temp_path PREFIX/fastcgi;
    uwsgi_temp_path PREFIX/uwsgi;
    scgi_temp_path PREFIX/scgi;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:PORT;
        location / { return 204; }
    }
}
"""


def targets(setup: Setup, chosen: str) -> list[Target]:
    def uvicorn(app: str) -> Callable[[int], list[str]]:
        return lambda port: [str(BIN / "uvicorn"), app, "--app-dir", str(HERE.parent),
                             "--port", str(port), *UVICORN_FLAGS]  # fmt: skip

    def verifier(*flags: str) -> Callable[[int], list[str]]:
        return lambda port: [str(BIN / "authgate-verifier"), "--port", str(port), *flags]

    def fixed(args: list[str]) -> Callable[[int], list[str]]:
        return lambda port: args

    def nginx_204(port: int) -> list[str]:
        prefix = setup.work / "nginx-204"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_204.replace("PREFIX", str(prefix)).replace("PORT", str(port)))
        return [nginx_binary(), "-p", str(prefix), "-c", str(conf)]

    hot = fixed(setup.hot())
    cookie = fixed(["-H", f"Cookie: __Host-authgate_session={setup.token()}"])
    env = setup.verifier_env
    every = [
        Target("a", "nginx floor (return 204)", None, "/floor/ok.txt", hot),
        Target("b", "raw ASGI 204 (uvicorn)", uvicorn("bench.raw_asgi:app"), "/ok.txt", hot),
        Target("n", "nginx as the auth process (204)", nginx_204, "/ok.txt", hot),
        Target("c", "verifier, cached, bearer", verifier(), "/ok.txt", hot, env),
        Target("k", "verifier, cached, cookie", verifier(), "/ok.txt", cookie, env),
        Target("u", "verifier under uvicorn, bearer", verifier("--server", "uvicorn"),
               "/ok.txt", hot, env),
        Target("w", "verifier, 2 workers, bearer", verifier("--workers", "2"), "/ok.txt", hot,
               env),
        Target("d", "verifier, every token new", verifier(), "/ok.txt",
               fixed(["-s", str(setup.lua)]), env),
        Target("e", "seed: framework + PyJWT + Redis", uvicorn("bench.seed_verifier:app"),
               "/ok.txt", hot, setup.seed_env),
    ]  # fmt: skip
    built = setup.oauth2_proxy
    if built is not None:
        htpasswd = setup.work / "htpasswd"

        def signed_in(port: int) -> list[str]:
            return ["-H", f"Cookie: {oauth2_proxy.sign_in(port)}"]

        every += [
            Target("o", f"oauth2-proxy {oauth2_proxy.VERSION}, cookie store",
                   lambda port: oauth2_proxy.command(built, port, htpasswd, None),
                   "/o2p/ok.txt", signed_in),
            Target("r", f"oauth2-proxy {oauth2_proxy.VERSION}, Redis store",
                   lambda port: oauth2_proxy.command(built, port, htpasswd, setup.oauth2_redis),
                   "/o2p/ok.txt", signed_in),
        ]  # fmt: skip
    return [t for t in every if t.key in chosen]


def measure(setup: Setup, target: Target, args: argparse.Namespace, pin: bool) -> Measured:
    """One target behind a fresh nginx: preflight, warm-up, then wrk, its CPU time read
    from /proc before and after."""
    port, nginx_port = free_port(), free_port()
    addresses = {"AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{nginx_port}",
                 "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{port}"}  # fmt: skip
    nginx = Nginx(setup.work / "nginx", HERE / "nginx.conf.template", addresses)
    argv = None
    if target.command is not None:
        argv = (["taskset", "-c", "1"] if pin else []) + target.command(port)
    with process(argv, port, target.env) if argv else _nothing() as child:
        nginx.start(nginx_port)
        try:
            url = f"http://127.0.0.1:{nginx_port}{target.path}"
            wrk_args = target.wrk_args(port)
            headers = wrk_args[1::2] if wrk_args[0] == "-H" else setup.hot()[1::2]
            preflight(url, headers, target.name, setup.work)
            # Warm-up: fill caches and keep-alive pools before measuring.
            warm = ["wrk", "-t1", "-c8", "-d1s", *wrk_args, url]
            subprocess.run(warm, capture_output=True, check=True)
            before = group_cpu_seconds(child.pid) if child else None
            run = wrk_run(url, args.connections, args.duration, wrk_args)
            cpu = group_cpu_seconds(child.pid) - before if child and before is not None else None
        finally:
            nginx.stop()
    if target.key == "d" and run.requests > setup.fresh:
        log(f"bench: note: (d) sent {run.requests} requests for {setup.fresh} tokens")
    return Measured(target.key, target.name, run.rps, run.p50_ms, run.p99_ms, run.requests,
                    run.non_2xx, cpu)  # fmt: skip


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the group `pgid` (the target and
    any workers it forked), from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[0] is the state (field 3 of proc(5)): pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def run(args: argparse.Namespace) -> None:
    with (
        services.running(args, "redis") as urls,
        tempfile.TemporaryDirectory(prefix="authgate-bench-") as tmp,
        ExitStack() as stack,
    ):
        want_peer = bool({"o", "r"} & set(args.targets))
        setup = prepare(Path(tmp), urls["redis"], args.duration, want_peer)
        if setup.oauth2_proxy is not None and "r" in args.targets:
            # oauth2-proxy's Redis store gets a redis-server of its own, on a free port.
            own = LocalRedis(Path(tmp) / "oauth2-proxy-redis", free_port())
            stack.callback(own.stop)
            own.start()
            setup.oauth2_redis = own.url
        chosen = targets(setup, args.targets)
        # --pin: the target alone on core 1, nginx and wrk on core 0, so that the target's
        # own cost decides its throughput. Off by default: nginx, the verifier and the
        # load generator sharing the cores is how one machine runs them.
        pin = args.pin and (os.cpu_count() or 1) >= 2
        if pin:
            os.sched_setaffinity(0, {0})  # this process, hence nginx and wrk
        rounds: list[list[Measured]] = []
        for round_no in range(1, args.rounds + 1):
            results = []
            for target in chosen:
                log(f"bench: round {round_no}/{args.rounds}: {target.name} ...")
                results.append(measure(setup, target, args, pin))
            rounds.append(results)
        placement = "target pinned to core 1, nginx + wrk on core 0" if pin else "no pinning"
        print(
            f"\nverifier benchmark: nginx 1 worker, wrk 1 thread, {args.connections}"
            f" connections, {args.duration}s x {len(rounds)} round(s); {placement}\n"
        )
        report.table(rounds)
        if args.svg is not None:
            args.svg.write_text(report.svg(rounds, args.connections))
            log(f"bench: plot written to {args.svg}")


def preflight(url: str, headers: list[str], name: str, work: Path) -> None:
    fields = dict(h.split(": ", 1) for h in headers)
    status = httpx.get(url, headers=fields).status_code
    if status != 200:
        sys.exit(f"bench: {name}: preflight got {status}; see {work}/nginx/error.log")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
