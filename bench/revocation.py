"""How long a revocation takes to reach two verifier processes while they are under load.

    .venv/bin/python -m bench.revocation [--samples 200] [--connections 16]

Two `authgate-verifier` processes (their own server, one worker each) on one Redis; wrk
keeps each busy with cached requests the whole time. Each sample: a new session, its
token answered 204 (and so cached) by both, then the session ended the issuer's way
(issuer.records.end_session: delete and publish, one transaction), and each verifier
polled over a kept-alive connection until it answers 401. The time from the end to each
verifier's first 401 is the sample. The contract's promise is 100 ms (DESIGN.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from statistics import median, quantiles

import httpx

from authgate import redis_client
from issuer.records import end_session, write_session
from issuer.signing import SigningKey, access_token_claims, jwks, new_session_id
from stack import services
from stack.processes import free_port, run_stoppable

from .verifier import AUDIENCE, BIN, ISSUER, log, process

DEADLINE_MS = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200, help="revocations (default 200)")
    parser.add_argument(
        "--connections", type=int, default=16, help="wrk connections per verifier (default 16)"
    )
    services.add_arguments(parser, "redis")
    args = parser.parse_args()
    return run_stoppable(lambda: run(args), "bench-revocation")


def run(args: argparse.Namespace) -> None:
    with (
        services.running(args, "redis") as urls,
        tempfile.TemporaryDirectory(prefix="authgate-bench-") as tmp,
        ExitStack() as stack,
    ):
        work = Path(tmp)
        key = SigningKey.generate("EdDSA")
        (work / "jwks.json").write_text(json.dumps(jwks([key])))
        env = {
            "AUTHGATE_ISSUER": ISSUER,
            "AUTHGATE_AUDIENCE": AUDIENCE,
            "AUTHGATE_REDIS_URL": urls["redis"],
            "AUTHGATE_JWKS_FILE": str(work / "jwks.json"),
            "AUTHGATE_LOG_LEVEL": "WARNING",
        }
        ports = [free_port(), free_port()]
        for port in ports:
            stack.enter_context(
                process([str(BIN / "authgate-verifier"), "--port", str(port)], port, env)
            )
        for port in ports:
            _wait_ready(port)
        hot_sid = new_session_id()
        asyncio.run(_write(urls["redis"], hot_sid, "load"))
        hot = _token(key, hot_sid, "load")
        duration = max(10, args.samples // 5)
        loads = [
            subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{args.connections}",
                    f"-d{duration}s",
                    "-H",
                    f"Authorization: Bearer {hot}",
                    f"http://127.0.0.1:{port}/verify",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for port in ports
        ]
        for load in loads:
            stack.callback(_stop, load)
        time.sleep(1)  # the load running before the first sample
        samples = asyncio.run(_sample(urls["redis"], key, ports, args.samples, duration - 2))
        outputs = [load.communicate()[0] for load in loads]
    rates = [_rate(out) for out in outputs]
    report(samples, rates, args)


async def _write(redis_url: str, sid: str, sub: str) -> None:
    client = redis_client.connect(redis_url)
    await write_session(client, sid, sub=sub, ttl=600, roles=["member"])
    await client.aclose()


def _token(key: SigningKey, sid: str, sub: str) -> str:
    return key.sign(
        access_token_claims(
            issuer=ISSUER, audience=AUDIENCE, sub=sub, sid=sid, client_id="bench", lifetime=600
        )
    )


async def _sample(
    redis_url: str, key: SigningKey, ports: list[int], count: int, budget: float
) -> list[list[float]]:
    """Per verifier, the milliseconds from each end_session to its first 401."""
    redis = redis_client.connect(redis_url)
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=5) for p in ports]
    latencies: list[list[float]] = [[] for _ in ports]
    stop_at = time.perf_counter() + budget
    try:
        for _ in range(count):
            if time.perf_counter() > stop_at:
                log("bench: the load ended before all samples; reporting those taken")
                break
            sid = new_session_id()
            await write_session(redis, sid, sub="revoked", ttl=600)
            auth = {"Authorization": f"Bearer {_token(key, sid, 'revoked')}"}
            for client in clients:
                for _ in range(2):  # the second answer comes from the cache
                    if (await client.get("/verify", headers=auth)).status_code != 204:
                        raise SystemExit("bench: a fresh session was not accepted")
            ended = time.perf_counter()
            await end_session(redis, sid)
            waits = await asyncio.gather(*(_until_401(c, auth, ended) for c in clients))
            for i, wait in enumerate(waits):
                latencies[i].append(wait)
    finally:
        for client in clients:
            await client.aclose()
        await redis.aclose()
    return latencies


async def _until_401(client: httpx.AsyncClient, auth: dict[str, str], since: float) -> float:
    while (await client.get("/verify", headers=auth)).status_code != 401:
        if time.perf_counter() - since > 5:
            raise SystemExit("bench: a revoked session was still accepted after 5 s")
    return (time.perf_counter() - since) * 1000


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").json()["checks"]["session_events"]:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"bench: the verifier on port {port} never subscribed")


def _stop(load: subprocess.Popen[str]) -> None:
    if load.poll() is None:
        load.terminate()
        load.wait()


def _rate(output: str) -> float:
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return 0.0


def report(samples: list[list[float]], rates: list[float], args: argparse.Namespace) -> None:
    print(
        f"\nrevocation under load: 2 verifiers, each under wrk -c{args.connections}"
        f" ({', '.join(f'{r:.0f}' for r in rates)} req/s while sampling)\n"
    )
    print(f"{'verifier':<12}{'samples':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    everything = [s for per in samples for s in per]
    for name, values in [*((f"#{i + 1}", v) for i, v in enumerate(samples)), ("both", everything)]:
        if len(values) < 2:
            continue
        p99 = quantiles(values, n=100)[98]
        print(f"{name:<12}{len(values):>8}{median(values):>9.2f}{p99:>9.2f}{max(values):>9.2f}")
    if len(everything) >= 2:
        p99 = quantiles(everything, n=100)[98]
        mark = "ok" if p99 <= DEADLINE_MS else "MISSED"
        print(f"\np99 over both: {p99:.2f} ms  (target <= {DEADLINE_MS:g} ms) {mark}")


if __name__ == "__main__":
    sys.exit(main())
