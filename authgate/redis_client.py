"""Every authgate service's Redis client comes from here: one URL syntax for standalone,
TLS, Sentinel and Cluster, and the timeouts and retries of all of them (docs/scaling.md).

    redis://[[user]:pass@]host[:6379][/db]            standalone (rediss:// with TLS)
    unix:///path/to/redis.sock[?db=N]                 standalone on a Unix socket
    redis+sentinel://[[user]:pass@]h1[:26379],h2[:26379]/<master>[/db]
        [?sentinel_password=…&sentinel_username=…]    Sentinel (rediss+sentinel:// with TLS)
    redis+cluster://[[user]:pass@]h1[:6379],h2[:6379][?max_redirections=5]
                                                      Cluster (rediss+cluster:// with TLS)

The peers' known traps, each closed here: a Sentinel setup that ignores the database
number (the db is passed to the master's pool), a cluster client that lands on a replica
for writes (replicas are never read from, so no READONLY), a password that reaches only
the seed node (it is given to every node's pool: no NOAUTH), `rediss://` not recognised.

This module imports nothing else of authgate: the Kong image ships it beside the
idempotency plugin (kong/Dockerfile), which builds its client here too.

Replies are decoded (str), as every service reads them. `timeout` bounds connecting and
each reply; None waits as long as a command takes, for callers that block on purpose
(the outbox relay's XREADGROUP BLOCK).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff

STANDALONE_SCHEMES = frozenset({"redis", "rediss", "unix"})
SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})
SCHEMES = STANDALONE_SCHEMES | SENTINEL_SCHEMES | CLUSTER_SCHEMES

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
#: Kong Enterprise's default for `cluster_max_redirections`.
DEFAULT_MAX_REDIRECTIONS = 5

#: A command that fails on a broken connection is tried again this many times, after a
#: short jittered pause: enough to ride over a reconnect to a new master (Sentinel) or a
#: refreshed slot map (Cluster); short enough that a Redis that is really gone fails the
#: request within one timeout plus ~0.1 s (the verifier then answers 503, fail-closed).
RETRIES = 2
BACKOFF_BASE, BACKOFF_CAP = 0.02, 0.1


@dataclass(frozen=True)
class Target:
    """Where a URL points, parsed and checked."""

    topology: str  # "standalone", "sentinel" or "cluster"
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    tls_verify: bool = True
    max_redirections: int = DEFAULT_MAX_REDIRECTIONS


def parse(url: str) -> Target:
    """The target of `url`; ValueError with a message an operator can act on."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        choices = ", ".join(sorted(f"{s}://" for s in SCHEMES))
        raise ValueError(f"must start with one of {choices}")
    if scheme in STANDALONE_SCHEMES:
        parts = urlsplit(url.strip())
        if scheme != "unix" and not parts.hostname:
            raise ValueError("has no host")
        if scheme == "unix" and not parts.path:
            raise ValueError("has no socket path")
        return Target("standalone", url.strip())
    where, _, query_text = rest.partition("?")
    netloc, _, path = where.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    query = dict(parse_qsl(query_text, keep_blank_values=True))
    sentinel = scheme in SENTINEL_SCHEMES
    nodes = _nodes(hosts, DEFAULT_SENTINEL_PORT if sentinel else DEFAULT_PORT)
    common: dict[str, Any] = {
        "url": url.strip(),
        "nodes": nodes,
        "username": username,
        "password": password,
        "tls": scheme.startswith("rediss"),
        "tls_verify": _tls_verify(query.pop("ssl_cert_reqs", "required")),
    }
    if sentinel:
        segments = [s for s in path.split("/") if s]
        if not segments:
            raise ValueError("names no master: redis+sentinel://host:26379,…/<master>[/db]")
        if len(segments) > 2:
            raise ValueError("has a path beyond /<master>/<db>")
        db = _db(segments[1]) if len(segments) == 2 else 0
        target = Target(
            "sentinel",
            master=unquote(segments[0]),
            db=db,
            sentinel_username=query.pop("sentinel_username", None) or None,
            sentinel_password=query.pop("sentinel_password", None) or None,
            **common,
        )
    else:
        if path.strip("/"):
            raise ValueError("has a path: a Cluster has only database 0")
        raw = query.pop("max_redirections", str(DEFAULT_MAX_REDIRECTIONS))
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ValueError(f"max_redirections={raw!r} is not a whole number in 1..100")
        target = Target("cluster", max_redirections=int(raw), **common)
    if query:
        raise ValueError(f"has unknown parameters: {', '.join(sorted(query))}")
    return target


def _nodes(hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes = []
    for item in (h.strip() for h in hosts.split(",")):
        if not item:
            raise ValueError("has an empty address in its host list")
        if item.startswith("["):  # [IPv6]:port
            host, _, tail = item[1:].partition("]")
            port_text = tail.removeprefix(":") if tail else ""
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ValueError(f"address {item!r} has no host")
        if port_text and (not port_text.isdigit() or not 1 <= int(port_text) <= 65535):
            raise ValueError(f"address {item!r} has no valid port")
        nodes.append((host, int(port_text) if port_text else default_port))
    return tuple(nodes)


def _db(text: str) -> int:
    if not text.isdigit() or int(text) > 15:
        raise ValueError(f"database {text!r} is not a number in 0..15")
    return int(text)


def _tls_verify(text: str) -> bool:
    if text not in ("required", "none"):
        raise ValueError(f"ssl_cert_reqs={text!r} must be required or none")
    return text == "required"


def validate(url: str) -> str:
    """`url` when it parses (the settings' check), else ValueError."""
    parse(url)
    return url.strip()


# --- building clients ----------------------------------------------------------------


def connect(url: str, *, timeout: float | None = None, retries: int = RETRIES) -> aioredis.Redis:
    """An asyncio client for `url`, whatever its topology.

    `retries=0` for a subscription: redis-py would otherwise reconnect and subscribe
    again in silence, and the messages of the gap would be missed unnoticed.

    A Cluster client (redis.asyncio.RedisCluster) answers the same commands for keys of
    one hash slot; it is typed as the standalone client its callers use.
    """
    return cast(aioredis.Redis, _build(parse(url), timeout, retries, blocking=False))


def connect_blocking(url: str, *, timeout: float | None = None) -> redis.Redis:
    """The same, for code that runs outside an event loop (command-line checks, the plugin)."""
    return cast(redis.Redis, _build(parse(url), timeout, RETRIES, blocking=True))


def connect_target(
    target: Target, *, timeout: float | None, blocking: bool, decode: bool = True
) -> Any:
    """A client for an already-parsed target (the plugin builds one from Kong's fields);
    `decode=False` keeps replies as bytes (the plugin stores response bodies as they are)."""
    return _build(target, timeout, RETRIES, blocking=blocking, decode=decode)


def _build(
    target: Target, timeout: float | None, retries: int, *, blocking: bool, decode: bool = True
) -> Any:
    backoff = ExponentialWithJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP)
    retry = (redis.retry.Retry if blocking else redis.asyncio.retry.Retry)(backoff, retries)
    options: dict[str, Any] = {
        "decode_responses": decode,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
    }
    if target.topology == "standalone":
        cls = redis.Redis if blocking else aioredis.Redis
        return cls.from_url(target.url, **options)
    options |= {"username": target.username, "password": target.password}
    if target.tls:
        options |= {"ssl": True, "ssl_cert_reqs": "required" if target.tls_verify else "none"}
    if target.topology == "sentinel":
        sentinel_cls = redis.sentinel.Sentinel if blocking else redis.asyncio.sentinel.Sentinel
        sentinel_options = {
            key: value for key, value in options.items() if key not in ("username", "password")
        }
        sentinel_options |= {
            "username": target.sentinel_username,
            "password": target.sentinel_password,
        }
        sentinels = sentinel_cls(list(target.nodes), sentinel_kwargs=sentinel_options, **options)
        return sentinels.master_for(target.master, db=target.db)
    if blocking:
        startup = [redis.cluster.ClusterNode(host, port) for host, port in target.nodes]
        cluster_cls: Any = redis.cluster.RedisCluster
    else:
        startup = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.nodes]
        cluster_cls = redis.asyncio.cluster.RedisCluster
    # Writes go to masters only (read_from_replicas stays off: no READONLY), and the
    # password in `options` reaches every node's pool, not only the seed's (no NOAUTH).
    client = cluster_cls(startup_nodes=startup, require_full_coverage=False, **options)
    # The MOVED/ASK redirections one command may follow (Kong's cluster_max_redirections);
    # both redis-py cluster clients keep it in this attribute.
    client.RedisClusterRequestTTL = target.max_redirections
    return client


# --- auto-pipelining, for many requests on one event loop --------------------------------


class AutoPipeline:
    """Runs the commands the tasks of one event loop send in the same turn of the loop as
    one pipeline: one write, one read and one pooled connection for all of them.

    Each caller still gets its own reply, or its own error (a command's error reply goes to
    that command's caller; a failure of the whole pipeline to every caller in it). Only
    for commands that do not depend on one another (non-transactional pipeline): per
    command, the redis-py client costs several times what Redis does, and a pipeline of
    eight costs little more than one command (issue 17, bench/gateway.py). A Cluster
    client splits the pipeline per node itself. Commands go to Redis in the order sent.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.queued: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self.sending: set[asyncio.Task[None]] = set()  # held until done (asyncio keeps weak refs)

    async def execute_command(self, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not self.queued:
            # Starts on the loop's next turn: whatever this turn adds goes along.
            task = loop.create_task(self._send())
            self.sending.add(task)
            task.add_done_callback(self.sending.discard)
        future: asyncio.Future[Any] = loop.create_future()
        self.queued.append((args, future))
        return await future

    async def _send(self) -> None:
        batch, self.queued = self.queued, []
        replies: list[Any]
        try:
            pipe = self.client.pipeline(transaction=False)
            for args, _ in batch:
                pipe.execute_command(*args)
            replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            replies = [exc] * len(batch)
        for index, (_, future) in enumerate(batch):
            reply = replies[index] if index < len(replies) else redis.RedisError("no reply")
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


# --- topology, for the verifier's subscription ------------------------------------------


async def masters(client: aioredis.Redis) -> frozenset[str]:
    """The addresses of the masters `client` writes to now: one for Sentinel (as the
    sentinels name it), one per shard for a Cluster, none to tell for standalone. A change
    between two calls is a failover. Raises RedisError/OSError when it cannot be known."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool):
        host, port = await pool.get_master_address()
        return frozenset({f"{host}:{port}"})
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        slots = await client.execute_command("CLUSTER SLOTS")
        return frozenset(_slot_masters(slots))
    return frozenset()


def _slot_masters(slots: Any) -> set[str]:
    # redis-py answers CLUSTER SLOTS as {(start, end): {"primary": (host, port), …}}.
    if isinstance(slots, dict):
        return {f"{v['primary'][0]}:{v['primary'][1]}" for v in slots.values()}
    return {f"{entry[2][0]}:{entry[2][1]}" for entry in slots}


async def rediscover(client: aioredis.Redis) -> None:
    """Learn the topology again (a Cluster's slot map), so the next connection goes to
    the masters of now; nothing to do for the others, which ask on every connect."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        await client.nodes_manager.initialize()
