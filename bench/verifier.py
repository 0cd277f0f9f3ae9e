"""Verifier benchmark: nginx (one worker) + wrk against five auth_request targets.

    bin/bench [--duration 8] [--connections 32]

(a) nginx's floor: auth_request to an internal `return 204`
(b) the Python floor: a raw ASGI app answering 204, under uvicorn
(c) the verifier, hot path (one token, seen before)
(d) the verifier, every token new (signature checked on every request)
(e) the seed verifier: a framework endpoint, PyJWT decode + Redis on every request

Every target runs under the same uvicorn settings (1 worker, httptools, uvloop, no access
log) behind the same nginx config, one after the other in one run; the table prints
req/s, p99 and the ratios the verifier is held to. Absolute numbers depend on the
machine; the ratios are the result.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx

from authgate import redis_client
from issuer.records import write_session
from issuer.signing import SigningKey, access_token_claims, jwks, new_session_id
from stack import services
from stack.nginx import Nginx
from stack.processes import Child, free_port, listening, run_stoppable

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
def process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    """`args` running (and listening on `port`) for the block; stopped after it."""
    with tempfile.NamedTemporaryFile(prefix="authgate-bench-", suffix=".log") as log_file:
        child = Child(args, log=Path(log_file.name), env={**os.environ, **(env or {})})
        try:
            child.start().wait_until(lambda: listening(port), args[0], 30)
            yield
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
    parser.add_argument("--targets", default="abcde", help="which targets to run (default abcde)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets (default 3)")
    parser.add_argument(
        "--pin", action="store_true", help="pin the target to core 1, the rest to 0"
    )
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

    def token(self) -> str:
        return self.key.sign(
            access_token_claims(issuer=ISSUER, audience=AUDIENCE, sub="bench-user",
                                sid=self.sid, client_id="bench", lifetime=3600)
        )  # fmt: skip

    def hot(self) -> list[str]:
        return ["-H", f"Authorization: Bearer {self.token()}"]


@dataclass(frozen=True)
class Target:
    name: str
    command: Callable[[int], list[str]] | None  # None: nginx answers itself
    path: str
    wrk_args: list[str]


def prepare(work: Path, redis_url: str, duration: int) -> Setup:
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
    # (d) needs a token per request: more than wrk can send in the run.
    setup = Setup(work, key, sid, 6000 * duration, work / "fresh.lua", verifier_env, seed_env)
    log(f"bench: minting {setup.fresh} tokens for the every-token-new run")
    tokens = work / "tokens.txt"
    tokens.write_text("\n".join(setup.token() for _ in range(setup.fresh)) + "\n")
    setup.lua.write_text(FRESH_TOKENS_LUA.replace("TOKENS_FILE", str(tokens)))
    www = work / "nginx" / "www"
    (www / "floor").mkdir(parents=True)
    (www / "ok.txt").write_text("ok\n")
    (www / "floor" / "ok.txt").write_text("ok\n")
    return setup


def targets(setup: Setup, chosen: str) -> list[Target]:
    def uvicorn(app: str) -> Callable[[int], list[str]]:
        return lambda port: [str(BIN / "uvicorn"), app, "--app-dir", str(HERE.parent),
                             "--port", str(port), *UVICORN_FLAGS]  # fmt: skip

    def verifier(port: int) -> list[str]:
        return [str(BIN / "authgate-verifier"), "--port", str(port)]

    hot = setup.hot()
    every = [
        Target("a nginx floor (return 204)", None, "/floor/ok.txt", hot),
        Target("b raw ASGI 204 (uvicorn)", uvicorn("bench.raw_asgi:app"), "/ok.txt", hot),
        Target("c verifier, hot path", verifier, "/ok.txt", hot),
        Target("d verifier, every token new", verifier, "/ok.txt", ["-s", str(setup.lua)]),
        Target("e seed: framework + PyJWT + Redis", uvicorn("bench.seed_verifier:app"),
               "/ok.txt", hot),
    ]  # fmt: skip
    return [t for t in every if t.name[0] in chosen]


def measure(setup: Setup, target: Target, args: argparse.Namespace, pin: bool) -> Result:
    """One target behind a fresh nginx: preflight, warm-up, then wrk."""
    port, nginx_port = free_port(), free_port()
    addresses = {"AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{nginx_port}",
                 "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{port}"}  # fmt: skip
    nginx = Nginx(setup.work / "nginx", HERE / "nginx.conf.template", addresses)
    env = setup.seed_env if target.name.startswith("e") else setup.verifier_env
    argv = None
    if target.command is not None:
        argv = (["taskset", "-c", "1"] if pin else []) + target.command(port)
    with process(argv, port, env) if argv else _nothing():
        nginx.start(nginx_port)
        try:
            url = f"http://127.0.0.1:{nginx_port}{target.path}"
            preflight(url, setup.token(), target.name, setup.work)
            # Warm-up: fill caches and keep-alive pools before measuring.
            warm = ["wrk", "-t1", "-c8", "-d1s", *setup.hot(), url]
            subprocess.run(warm, capture_output=True, check=True)
            rps, p99, requests, bad = wrk(url, args, target.wrk_args)
        finally:
            nginx.stop()
    if target.name.startswith("d") and requests > setup.fresh:
        log(f"bench: note: (d) sent {requests} requests for {setup.fresh} tokens")
    return Result(target.name, rps, p99, requests, bad)


def run(args: argparse.Namespace) -> None:
    with (
        services.running(args, "redis") as urls,
        tempfile.TemporaryDirectory(prefix="authgate-bench-") as tmp,
    ):
        setup = prepare(Path(tmp), urls["redis"], args.duration)
        chosen = targets(setup, args.targets)
        # --pin: the target alone on core 1, nginx and wrk on core 0, so that the target's
        # own cost decides its throughput. Off by default: nginx, the verifier and the
        # load generator sharing the cores is how one machine runs them.
        pin = args.pin and (os.cpu_count() or 1) >= 2
        if pin:
            os.sched_setaffinity(0, {0})  # this process, hence nginx and wrk
        rounds: list[list[Result]] = []
        for round_no in range(1, args.rounds + 1):
            results = []
            for target in chosen:
                log(f"bench: round {round_no}/{args.rounds}: {target.name} ...")
                results.append(measure(setup, target, args, pin))
            rounds.append(results)
        report(rounds, args, pin)


def preflight(url: str, token: str, name: str, work: Path) -> None:
    status = httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
    if status != 200:
        sys.exit(f"bench: {name}: preflight got {status}; see {work}/nginx/error.log")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def report(rounds: list[list[Result]], args: argparse.Namespace, pin: bool) -> None:
    """Per target the median over rounds; each ratio is taken within a round, then the median."""
    names = [r.name for r in rounds[0]]
    by_round = [{r.name[0]: r for r in results} for results in rounds]
    placement = "target pinned to core 1, nginx + wrk on core 0" if pin else "no pinning"
    print(
        f"\nverifier benchmark: nginx 1 worker, wrk 1 thread, {args.connections} connections,"
        f" {args.duration}s x {len(rounds)} round(s); {placement}\n"
    )
    print(f"{'target (median of rounds)':<38}{'req/s':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for i, name in enumerate(names):
        runs = [results[i] for results in rounds]
        rps = median(r.rps for r in runs)
        p99 = median(r.p99_ms for r in runs)
        print(f"{name:<38}{rps:>10.0f}{p99:>10.2f}{sum(r.non_2xx for r in runs):>9}")
    if not {"b", "c", "e"} <= by_round[0].keys():
        return

    def ratio(f: Callable[[dict[str, Result]], float]) -> tuple[float, str]:
        values = [f(by) for by in by_round]
        return median(values), " ".join(f"{v:.2f}" for v in values)

    checks = [
        (
            "c/b  throughput vs Python floor",
            ratio(lambda by: by["c"].rps / by["b"].rps),
            ">=",
            0.85,
        ),
        ("c/e  throughput vs seed verifier", ratio(lambda by: by["c"].rps / by["e"].rps), ">=", 8),
        ("p99(c)/p99(b)", ratio(lambda by: by["c"].p99_ms / by["b"].p99_ms), "<=", 2),
    ]
    if "d" in by_round[0]:
        checks.append(
            ("d/e  cold path vs seed verifier", ratio(lambda by: by["d"].rps / by["e"].rps), "", 0)
        )
    if "a" in by_round[0]:
        checks.append(
            ("c/a  verifier vs nginx floor", ratio(lambda by: by["c"].rps / by["a"].rps), "", 0)
        )
    print(f"\n{'ratio':<38}{'median':>8}  {'target':<8}{'':<8}per round")
    for label, (value, each), op, bound in checks:
        if op:
            ok = value >= bound if op == ">=" else value <= bound
            target, mark = f"{op} {bound:g}", "ok" if ok else "MISSED"
        else:
            target, mark = "(info)", ""
        print(f"{label:<38}{value:>8.2f}  {target:<8}{mark:<8}{each}")
    if any(r.non_2xx for results in rounds for r in results):
        print(
            "\nwarning: some answers were not 2xx; the numbers are not comparable", file=sys.stderr
        )


if __name__ == "__main__":
    sys.exit(main())
