"""Gateway benchmark: `authgate-gateway serve` with and without the idempotency plugin,
against the same upstream hit directly.

    bin/bench-gateway [--duration 5] [--connections 32] [--rounds 3]

(a) direct: wrk → the upstream (a raw ASGI app under uvicorn answering 204)
(f) the Python proxy floor: a minimal pass-through on serve's stack (bench/proxy_floor.py)
(b) serve, a route with no plugin (streaming proxy)
(c) serve, idempotency on, every POST a new key (acquire + store: two Redis scripts)
(d) serve, idempotency on, one key replayed (one Redis script; the upstream is not called)

All in one run, one after the other, `--rounds` times; each ratio is taken within a round,
then the median. Absolute numbers depend on the machine; the ratios are the result.

Then the plugin in kong-pdk's real plugin server, driven over its socket as Kong 3.9.1
drives it (tests/kong_rpc.py): per request kind, the RPC round trips one request costs, the
time spent in them (median), and the latency of the whole request as the harness runs it
(the plugin's phases, plus the upstream call for requests that reach it), median and p99.
A first keyed POST is measured twice: against an upstream answering 201 with a JSON body,
and against the 204 upstream (no response body to fetch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from statistics import median, quantiles
from typing import Any

import httpx
import yaml

from stack import services
from stack.processes import free_port, run_stoppable

from .verifier import Result, log, process, wrk

KEYS = """
local n, prefix = 0, tostring(os.time()) .. "-" .. tostring(math.random(1000000000)) .. "-"
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Idempotency-Key"] = prefix .. n,
    ["Content-Type"] = "application/json", ["X-Auth-User"] = "bench"}, "{}")
end
"""
REPLAY = """
local key = "replay-" .. tostring(os.time()) .. "-" .. tostring(math.random(1000000000))
request = function()
  return wrk.format("POST", nil, {["Idempotency-Key"] = key,
    ["Content-Type"] = "application/json", ["X-Auth-User"] = "bench"}, "{}")
end
"""
PLAIN = 'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n'


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per target (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets (default 3)")
    services.add_arguments(parser, "redis")
    args = parser.parse_args()
    return run_stoppable(lambda: run(args), "bench-gateway")


def run(args: argparse.Namespace) -> None:
    with services.running(args, "redis") as urls:
        measure(args, urls["redis"])


def measure(args: argparse.Namespace, redis_url: str) -> None:
    up_port, gw_port, floor_port = free_port(), free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    upstream = [str(bin_dir / "uvicorn"), "bench.raw_asgi:app", "--port", str(up_port)]
    upstream += ["--http", "httptools", "--loop", "uvloop", "--no-access-log"]
    upstream += ["--log-level", "warning"]
    floor = [str(bin_dir / "uvicorn"), "bench.proxy_floor:app", "--port", str(floor_port)]
    floor += [*upstream[4:], "--no-server-header"]  # as serve (authgate/serving.py)
    with tempfile.TemporaryDirectory(prefix="authgate-bench-gw-") as tmp:
        work = Path(tmp)
        plugin = {"name": "idempotency", "config": {"redis_url": redis_url}}
        config = {
            "_format_version": "3.0",
            "services": [
                {
                    "name": "upstream",
                    "url": f"http://127.0.0.1:{up_port}",
                    "routes": [
                        {"name": "plain", "paths": ["/plain"]},
                        {"name": "idem", "paths": ["/idem"], "plugins": [plugin]},
                    ],
                }
            ],
        }
        (work / "kong.yml").write_text(yaml.safe_dump(config))
        scripts = {}
        for name, text in (("keys", KEYS), ("replay", REPLAY), ("plain", PLAIN)):
            scripts[name] = work / f"{name}.lua"
            scripts[name].write_text(text)
        gateway = [str(bin_dir / "authgate-gateway"), "--log-level", "warning", "serve"]
        gateway += [str(work / "kong.yml"), "--port", str(gw_port)]
        targets = [
            ("a direct to upstream", f"http://127.0.0.1:{up_port}/x", "plain"),
            ("f Python proxy floor", f"http://127.0.0.1:{floor_port}/x", "plain"),
            ("b serve, no plugin", f"http://127.0.0.1:{gw_port}/plain/x", "plain"),
            ("c serve, idempotency, new keys", f"http://127.0.0.1:{gw_port}/idem/x", "keys"),
            ("d serve, idempotency, replays", f"http://127.0.0.1:{gw_port}/idem/x", "replay"),
        ]
        rounds: list[list[Result]] = []
        floor_env = {"AUTHGATE_BENCH_UPSTREAM": f"http://127.0.0.1:{up_port}"}
        with (
            process(upstream, up_port),
            process(gateway, gw_port),
            process(floor, floor_port, floor_env),
        ):
            check = httpx.post(targets[2][1], content=b"{}", headers={"Idempotency-Key": "warm"})
            if check.status_code != 204:
                sys.exit(f"bench: preflight through the plugin got {check.status_code}")
            for n in range(args.rounds):
                results = []
                for name, url, script in targets:
                    log(f"round {n + 1}/{args.rounds}: {name}")
                    extra = ["-s", str(scripts[script])]
                    wrk(url, argparse.Namespace(connections=8, duration=1), extra)  # warm
                    rps, p99, requests, bad = wrk(url, args, extra)
                    results.append(Result(name, rps, p99, requests, bad))
                rounds.append(results)
            costs = rpc_costs(redis_url, f"http://127.0.0.1:{up_port}", work)
    report(rounds, args)
    print(f"\n{'plugin server (kong-pdk), per request':<36}{'RPCs':>6}{'RPC ms':>8}", end="")
    print(f"{'request median ms':>19}{'p99 ms':>9}")
    for name, trips, rpc, lat in costs:
        print(f"{name:<36}{trips:>6}{median(rpc):>8.2f}", end="")
        print(f"{median(lat):>19.2f}{quantiles(lat, n=100)[98]:>9.2f}")


def rpc_costs(redis_url: str, upstream: str, work: Path, n: int = 300) -> list[Any]:
    """Round trips and their latency per request kind, through the real plugin server.

    Per kind: the RPC round trips one request makes (the same for every request of the
    kind), the median time spent in them, and the median and p99 of the whole request as
    the harness runs it (the plugin's phases plus the upstream call where it is made).
    """
    from tests.gateway_harness import CountingUpstream
    from tests.kong_rpc import MiniKong, PluginServer, Request

    server = PluginServer(work, work / "pluginserver.log")
    created = CountingUpstream()  # answers 201 with a JSON body and a Location
    try:
        kong = MiniKong(server, {"redis_url": redis_url}, upstream)  # answers 204
        kong_201 = MiniKong(server, {"redis_url": redis_url}, created.url)
        user = {"X-Auth-User": "bench", "Content-Type": "application/json"}
        replay_key = "replay-" + uuid.uuid4().hex

        def new_key() -> dict[str, str]:
            return {**user, "Idempotency-Key": uuid.uuid4().hex}

        kinds: list[tuple[str, MiniKong, Callable[[], dict[str, str]]]] = [
            ("first keyed POST, 201 + body", kong_201, new_key),
            ("first keyed POST, 204", kong, new_key),
            ("replay", kong, lambda: {**user, "Idempotency-Key": replay_key}),
            ("no key", kong, lambda: dict(user)),
        ]
        out = []
        for name, through, headers in kinds:
            trips, rpc, lat = 0, [], []
            for _ in range(n):
                req = Request("POST", "/x", headers(), b"{}")
                before, busy = server.trips, server.rpc_seconds
                start = time.perf_counter()
                through.handle(req)
                lat.append((time.perf_counter() - start) * 1000)
                rpc.append((server.rpc_seconds - busy) * 1000)
                trips = server.trips - before
            out.append((name, trips, rpc, lat))
        return out
    finally:
        created.close()
        server.stop()


def report(rounds: list[list[Result]], args: argparse.Namespace) -> None:
    print(
        f"\ngateway benchmark: wrk 1 thread, {args.connections} connections,"
        f" {args.duration}s x {len(rounds)} round(s)\n"
    )
    print(f"{'target (median of rounds)':<36}{'req/s':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for i, result in enumerate(rounds[0]):
        runs = [r[i] for r in rounds]
        rps, p99 = median(r.rps for r in runs), median(r.p99_ms for r in runs)
        print(f"{result.name:<36}{rps:>10.0f}{p99:>10.2f}{sum(r.non_2xx for r in runs):>9}")
    print(f"\n{'ratio (median of per-round ratios)':<52}{'value':>8}  rounds")
    for label, top, bottom, field in (
        ("req/s  f/a  Python proxy floor / direct", 1, 0, "rps"),
        ("req/s  b/f  serve / the floor (goal >= 0.8)", 2, 1, "rps"),
        ("req/s  b/a  serve without plugin / direct", 2, 0, "rps"),
        ("req/s  c/a  plugin, new keys / direct", 3, 0, "rps"),
        ("req/s  d/a  plugin, replays / direct", 4, 0, "rps"),
        ("req/s  c/b  plugin, new keys / serve (goal >= 0.5)", 3, 2, "rps"),
        ("p99    b/f", 2, 1, "p99_ms"),
        ("p99    b/a", 2, 0, "p99_ms"),
        ("p99    c/a", 3, 0, "p99_ms"),
        ("p99    c/b", 3, 2, "p99_ms"),
    ):
        values = [getattr(r[top], field) / getattr(r[bottom], field) for r in rounds]
        shown = " ".join(f"{v:.2f}" for v in values)
        print(f"{label:<52}{median(values):>8.2f}  {shown}")


if __name__ == "__main__":
    sys.exit(main())
