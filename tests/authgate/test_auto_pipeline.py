"""`redis_client.AutoPipeline` on real Redis (standalone and Cluster): the commands of one
turn of the event loop go out together, and each caller still gets its own reply or its
own error."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import redis

from authgate import redis_client
from stack.processes import free_port
from stack.redis_ha import LocalCluster


async def _gather(url: str, *commands: tuple[Any, ...]) -> list[Any]:
    client = redis_client.connect_target(
        redis_client.parse(url), timeout=2, blocking=False, decode=True
    )
    pipeline = redis_client.AutoPipeline(client)
    try:
        return await asyncio.gather(
            *(pipeline.execute_command(*c) for c in commands), return_exceptions=True
        )
    finally:
        await client.aclose()


def test_one_turn_of_the_loop_is_one_pipeline_with_a_reply_per_caller(
    standalone_redis_url: str,
) -> None:
    # CLIENT ID names the connection a command came on: twenty callers, one connection
    # (one server: a Cluster's pipeline is one per master, next test).
    url = standalone_redis_url
    ids = asyncio.run(_gather(url, *[("CLIENT", "ID")] * 20))
    assert len(set(ids)) == 1 and isinstance(ids[0], int)
    echoes = asyncio.run(_gather(url, *[("ECHO", f"caller-{n}") for n in range(20)]))
    assert echoes == [f"caller-{n}" for n in range(20)]


def test_an_error_reply_fails_only_its_own_caller(redis_url: str) -> None:
    key = "authgate:test:autopipe:" + secrets.token_hex(4)
    replies = asyncio.run(
        _gather(redis_url, ("SET", key, "text", "EX", 60), ("INCR", key), ("GET", key))
    )
    assert replies[0] is True and replies[2] == "text"
    assert isinstance(replies[1], redis.ResponseError)


def test_an_unreachable_redis_fails_every_caller() -> None:
    replies = asyncio.run(_gather(f"redis://127.0.0.1:{free_port()}/0", *[("PING",)] * 5))
    assert len(replies) == 5
    assert all(isinstance(r, redis.ConnectionError) for r in replies)


def test_a_cluster_pipeline_reaches_every_slot(redis_cluster: LocalCluster) -> None:
    # Keys spread over the three masters; the cluster client splits the pipeline per node.
    count = 30
    keys = [f"authgate:test:autopipe:{secrets.token_hex(4)}:{n}" for n in range(count)]
    sets = asyncio.run(_gather(redis_cluster.url, *[("SET", k, k, "EX", 60) for k in keys]))
    assert sets == [True] * count
    gets = asyncio.run(_gather(redis_cluster.url, *[("GET", k) for k in keys]))
    assert gets == keys
