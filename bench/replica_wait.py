"""What waiting for a replica costs (Redis WAIT): a revocation in the issuer
(AUTHGATE_REVOCATION_REPLICAS) and a key taken by the idempotency plugin (`wait_replicas`).

Starts a private Sentinel setup (1 master, 1 replica, 3 sentinels: stack/redis_ha.py);
ends sessions through the issuer's own code and takes keys through the plugin's own step
(its ACQUIRE script, as serve and Kong run it), in rounds alternating without WAIT and with
WAIT 1, so both meet the same machine; prints the median and p99 of one operation each way
and their ratio per round.

    .venv/bin/python -m bench.replica_wait [--sessions 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from authgate import redis_client
from gateway import plugins
from issuer.outbox import Outbox
from issuer.providers import Identity
from issuer.sessions import Sessions
from issuer.users import Users
from stack.redis_ha import LocalSentinel


async def _endings(url: str, replicas: int, count: int) -> list[float]:
    """Milliseconds each of `count` session endings took."""
    client = redis_client.connect(url)
    outbox = Outbox("https://bench.test")
    users = Users(client, outbox)
    sessions = Sessions(client, 600, outbox, replicas=replicas, wait_ms=1000)
    user, _ = await users.upsert(Identity("bench", secrets.token_hex(8), None, False, "B"))
    started = [await sessions.create(user, "bench") for _ in range(count)]
    took = []
    for session in started:
        assert session is not None
        began = time.perf_counter()
        await sessions.end(session.sid, user.id, "revoked")
        took.append((time.perf_counter() - began) * 1000)
    assert sessions.unreplicated == 0, "a replica missed a revocation: the figures mean little"
    await client.aclose()
    return took


def _acquires(url: str, replicas: int, count: int) -> list[float]:
    """Milliseconds each of `count` first takes of a new key took in the plugin."""
    config = {"redis_url": url, "wait_replicas": replicas, "wait_timeout_ms": 1000}
    plugin = plugins.find("idempotency").cls(config)  # as serve loads it
    took = []
    for _ in range(count):
        record = f"authgate:idem:{{bench}}:{secrets.token_hex(8)}"
        began = time.perf_counter()
        plugin.run(plugin.take(record, "fp", secrets.token_hex(8)))
        took.append((time.perf_counter() - began) * 1000)
    plugin.client.close()
    return took


def _p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    setup = LocalSentinel(Path(tempfile.mkdtemp(prefix="authgate-bench-sentinel-")))
    setup.start()
    try:
        print(f"with and without WAIT 1, {options.sessions} operations each way per round, "
              "Sentinel on loopback (1 master, 1 replica)")  # fmt: skip
        measures: list[tuple[str, Callable[[str, int, int], list[float]]]] = [
            ("issuer: a session ended", lambda *a: asyncio.run(_endings(*a))),
            ("plugin: a new key taken (its blocking client, as under Kong)", _acquires),
        ]
        for name, measure in measures:
            print(f"\n{name}\n{'round':<7}{'p50 ms no/with':>18}{'p99 ms no/with':>18}"
                  f"{'p50 ratio':>11}")  # fmt: skip
            for round_ in range(1, options.rounds + 1):
                plain = measure(setup.url, 0, options.sessions)
                waited = measure(setup.url, 1, options.sessions)
                p50 = statistics.median(plain), statistics.median(waited)
                p99 = _p99(plain), _p99(waited)
                print(f"{round_:<7}{p50[0]:>8.3f} / {p50[1]:<7.3f}{p99[0]:>8.3f} / "
                      f"{p99[1]:<7.3f}{p50[1] / p50[0]:>9.2f}x")  # fmt: skip
    finally:
        setup.stop()


if __name__ == "__main__":
    main()
