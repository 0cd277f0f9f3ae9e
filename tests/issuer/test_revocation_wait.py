"""AUTHGATE_REVOCATION_REPLICAS (issue 19, item 4): an ended session is held by that many
replicas before the issuer goes on (Redis WAIT on the connection that ended it), on the
session's Sentinel setup (1 master, 1 replica). A replica that can't answer makes the
ending wait its `wait_ms` and be counted, not undone."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time

import redis

from authgate import redis_client
from authgate.contract import session_key
from issuer.outbox import Outbox
from issuer.providers import Identity
from issuer.sessions import Sessions
from issuer.users import Users
from stack.redis_ha import LocalSentinel

from .test_config import run_issuer

WAIT_MS = 400


def _end_one(url: str, replicas: int) -> tuple[float, int, str]:
    """Start a session and end it with `replicas` to wait for: (seconds the end took, the
    endings counted as not replicated, the session's key)."""

    async def main() -> tuple[float, int, str]:
        client = redis_client.connect(url)
        outbox = Outbox("https://issuer.test")
        users = Users(client, outbox)
        sessions = Sessions(client, 600, outbox, replicas=replicas, wait_ms=WAIT_MS)
        user, _ = await users.upsert(Identity("wait", secrets.token_hex(8), None, False, "W"))
        session = await sessions.create(user, "wait")
        assert session is not None
        began = time.perf_counter()
        await sessions.end(session.sid, user.id, "revoked")
        took = time.perf_counter() - began
        await client.aclose()
        return took, sessions.unreplicated, session_key(session.sid)

    return asyncio.run(main())


def _waits(port: int) -> int:
    """WAIT commands the server at `port` has run."""
    with redis.Redis(port=port, decode_responses=True) as node:
        return int(node.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


def test_an_ending_waits_for_the_replica_and_counts_one_that_cannot_answer(
    redis_sentinel: LocalSentinel,
) -> None:
    master = redis_sentinel.master_port()
    replica = next(p for p in redis_sentinel.data_ports if p != master)
    before = _waits(master)
    _, unreplicated, key = _end_one(redis_sentinel.url, replicas=1)
    assert unreplicated == 0 and _waits(master) == before + 1
    with redis.Redis(port=replica, decode_responses=True) as node:
        assert not node.exists(key)  # the replica held the deletion when end() returned

    # A replica that can't answer (stopped): the ending waits its time out, is counted,
    # and stands on the master.
    os.kill(redis_sentinel.servers[replica].pid, signal.SIGSTOP)
    try:
        took, unreplicated, key = _end_one(redis_sentinel.url, replicas=1)
        assert unreplicated == 1 and took >= WAIT_MS / 1000
        with redis.Redis(port=master, decode_responses=True) as node:
            assert not node.exists(key)
        # Not asked to wait: no WAIT sent, nothing counted.
        before = _waits(master)
        _, unreplicated, _ = _end_one(redis_sentinel.url, replicas=0)
        assert unreplicated == 0 and _waits(master) == before
    finally:
        os.kill(redis_sentinel.servers[replica].pid, signal.SIGCONT)


def test_waiting_for_replicas_is_refused_on_a_cluster() -> None:
    refused = run_issuer(
        "--redis-url", "redis+cluster://n1:7000,n2:7001", "--revocation-replicas", "1"
    )
    assert refused.returncode == 2
    assert "AUTHGATE_REVOCATION_REPLICAS" in refused.stderr and "Traceback" not in refused.stderr
