"""What each hop of the assembled path costs: the stack `bin/demo` runs, measured hop by
hop in one run.

    bin/bench-path [--duration 5] [--rounds 3] [--connections 1]

(m) the member service reached directly (GET /members, identity headers set by hand)
(g) the gateway (`authgate-gateway serve kong/kong.yml`) → the member service
(v) the verifier alone, asked what nginx's auth subrequest asks
(n) the whole path: nginx → verifier (auth_request) → gateway → the member service

With one connection (the default) a request's latency is what the hops add up to: the
gateway adds g - m, nginx with its auth subrequest adds n - g, of which the verifier's
answer is v. Each difference is taken within a round, then the median over rounds.
"""

from __future__ import annotations

import argparse
import sys
from statistics import median

import httpx

from stack import demo
from stack.processes import run_stoppable

from .verifier import WrkRun, log, wrk_run

TARGETS = ("m members direct", "g gateway → members", "v verifier alone",
           "n nginx → verifier → gateway → members")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bin/bench-path", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--duration", type=int, default=5, help="seconds per target (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets (default 3)")
    parser.add_argument("--connections", type=int, default=1, help="wrk connections (default 1)")
    demo.add_arguments(parser)
    parser.set_defaults(**{f"{name}_port": 0 for name in demo.PORTS})  # free ports
    args = parser.parse_args()
    return run_stoppable(lambda: run(args), "bench-path")


def run(args: argparse.Namespace) -> None:
    with demo.assembled(args) as stack:
        bob = stack.users["bob"]  # a viewer: the member service lists only his own
        local = "http://127.0.0.1:{}".format
        identity = ["-H", f"X-Auth-User: {bob.uid}", "-H", "X-Auth-Roles: viewer"]
        bearer = ["-H", f"Authorization: Bearer {bob.token}"]
        subrequest = [*bearer, "-H", "X-Original-URI: /api/members", "-H",
                      "X-Original-Method: GET", "-H", "X-Forwarded-Host: 127.0.0.1",
                      "-H", "X-Forwarded-Proto: http"]  # fmt: skip
        urls = [
            (f"{local(stack.port['members'])}/members", identity),
            (f"{local(stack.port['gateway'])}/api/members", identity),
            (f"{local(stack.port['verifier'])}/verify", subrequest),
            (f"{stack.base}/api/members", bearer),
        ]
        for (url, headers), name in zip(urls, TARGETS, strict=True):
            pairs = dict(h.split(": ", 1) for h in headers[1::2])
            status = httpx.get(url, headers=pairs, timeout=10).status_code
            if status not in (200, 204):
                sys.exit(f"bench-path: preflight of {name} got {status}")
        rounds: list[list[WrkRun]] = []
        for n in range(args.rounds):
            results = []
            for (url, headers), name in zip(urls, TARGETS, strict=True):
                log(f"round {n + 1}/{args.rounds}: {name}")
                wrk_run(url, args.connections, 1, headers)  # warm
                results.append(wrk_run(url, args.connections, args.duration, headers))
            rounds.append(results)
    report(rounds, args)


def report(rounds: list[list[WrkRun]], args: argparse.Namespace) -> None:
    print(f"\npath benchmark: wrk 1 thread, {args.connections} connection(s),"
          f" {args.duration}s x {len(rounds)} round(s)\n")  # fmt: skip
    print(f"{'target (median of rounds)':<42}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for i, name in enumerate(TARGETS):
        runs = [r[i] for r in rounds]
        print(f"{name:<42}{median(r.rps for r in runs):>9.0f}"
              f"{median(r.p50_ms for r in runs):>9.3f}{median(r.p99_ms for r in runs):>9.3f}"
              f"{sum(r.non_2xx for r in runs):>9}")  # fmt: skip
    print(f"\n{'added p50 latency per hop (median of rounds)':<46}{'ms':>8}  rounds")
    for label, later, earlier in (
        ("the gateway (g - m)", 1, 0),
        ("nginx + auth subrequest (n - g)", 3, 1),
        ("  of which the verifier's answer (v)", 2, None),
    ):
        values = [r[later].p50_ms - (r[earlier].p50_ms if earlier is not None else 0)
                  for r in rounds]  # fmt: skip
        print(f"{label:<46}{median(values):>8.3f}  {' '.join(f'{v:.3f}' for v in values)}")


if __name__ == "__main__":
    sys.exit(main())
