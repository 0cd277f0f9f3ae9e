"""Every authgate service's Redis client comes from here, so that timeouts, TLS
(`rediss://`) and, later, Sentinel and Cluster are decided in one place.

Replies are decoded (str), as every service reads them. `timeout` bounds connecting and
each reply; None waits as long as a command takes, for callers that block on purpose
(the outbox relay's XREADGROUP BLOCK).
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis


def connect(url: str, *, timeout: float | None = None) -> aioredis.Redis:
    """An asyncio client for `url` (redis://, rediss:// or unix://)."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def connect_blocking(url: str, *, timeout: float | None = None) -> redis.Redis:
    """The same, for code that runs outside an event loop (command-line checks)."""
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout, socket_connect_timeout=timeout
    )
