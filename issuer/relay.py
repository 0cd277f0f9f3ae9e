"""The outbox relay: publishes the Redis event streams to RabbitMQ, at least once.

Each shard's stream (issuer/keyspace.py) is pumped by a task of its own. Entries are read
through a consumer group, published persistent and `mandatory` with
publisher confirms, and acknowledged (and deleted) in Redis only after RabbitMQ has
confirmed them. Entries a relay read but never acknowledged — it lost its connection,
or died — stay pending: the relay reads its own pending entries first after every
reconnect, and takes over other relays' entries once they are idle for `claim_idle`.
An event no queue is bound to receive is moved to its shard's `outbox:unroutable`, kept.
Consumers dedupe by the event `id` (also the AMQP `message_id`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import aio_pika
import aiormq
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import keyspace
from .amqp import keep_connected
from .outbox import GROUP

log = logging.getLogger("authgate.issuer")
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


class Relay:
    def __init__(
        self,
        redis: aioredis.Redis,
        amqp_url: str,
        exchange: str,
        *,
        consumer: str | None = None,
        claim_idle: float = 30.0,
        batch: int = 200,
    ) -> None:
        self._redis = redis
        self._url = amqp_url
        self._exchange_name = exchange
        self.consumer = consumer or f"{socket.gethostname()}-{id(self):x}-{int(time.time())}"
        self._claim_idle_ms = int(claim_idle * 1000)
        self._batch = batch
        self.connected = False
        self.published = 0
        self.last_error: str | None = None
        self._last_claim = dict.fromkeys(keyspace.ALL_SHARDS, 0.0)

    async def ensure_group(self) -> None:
        for shard in keyspace.ALL_SHARDS:
            try:
                await self._redis.xgroup_create(
                    keyspace.outbox(shard), GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def run(self) -> None:
        """Publish forever, reconnecting with backoff; cancel to stop."""
        await keep_connected(self._url, f"relay {self.consumer}", self._session, self._gone)

    async def _session(self, connection: aio_pika.abc.AbstractConnection) -> None:
        # On every (re)connect: Redis may have been away at start, or lost the group
        # (a restart without persistence); a read would then fail with NOGROUP forever.
        await self.ensure_group()
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.connected = True
        log.info("relay %s: publishing to %s", self.consumer, self._exchange_name)
        await self._pump(connection, exchange)

    def _gone(self, reason: str) -> None:
        self.connected, self.last_error = False, reason

    async def _pump(
        self, connection: aio_pika.abc.AbstractConnection, exchange: aio_pika.abc.AbstractExchange
    ) -> None:
        """A task per shard; the first to fail (a lost connection) stops them all."""
        tasks = [
            asyncio.create_task(self._pump_shard(shard, connection, exchange))
            for shard in keyspace.ALL_SHARDS
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump_shard(
        self,
        shard: str,
        connection: aio_pika.abc.AbstractConnection,
        exchange: aio_pika.abc.AbstractExchange,
    ) -> None:
        # What this consumer read before but never acknowledged comes first.
        pending = await self._read(shard, "0")
        while True:
            # A lost connection is noticed within a read's block time, events or not.
            if connection.is_closed or not connection.connected.is_set():
                raise ConnectionError("the RabbitMQ connection closed")
            entries = (
                pending or await self._claim(shard) or await self._read(shard, ">", block_ms=1000)
            )
            pending = []
            if entries:
                await self._publish(shard, exchange, entries)

    async def _read(
        self, shard: str, start: str, block_ms: int | None = None
    ) -> list[tuple[str, dict[str, str]]]:
        reply = await self._redis.xreadgroup(
            GROUP, self.consumer, {keyspace.outbox(shard): start}, count=self._batch,
            block=block_ms,
        )  # fmt: skip
        return [
            (entry_id, fields)
            for _, entries in reply or []
            for entry_id, fields in entries
            if fields
        ]

    async def _claim(self, shard: str) -> list[tuple[str, dict[str, str]]]:
        """Entries another relay left pending for `claim_idle`: it is presumed dead."""
        now = time.monotonic()
        if now - self._last_claim[shard] < self._claim_idle_ms / 2000:
            return []
        self._last_claim[shard] = now
        _, claimed, *_ = await self._redis.xautoclaim(
            keyspace.outbox(shard), GROUP, self.consumer, min_idle_time=self._claim_idle_ms,
            count=self._batch,
        )  # fmt: skip
        if claimed:
            log.info("relay %s: took over %d pending event(s)", self.consumer, len(claimed))
        return [(entry_id, fields) for entry_id, fields in claimed if fields]

    async def _publish(
        self,
        shard: str,
        exchange: aio_pika.abc.AbstractExchange,
        entries: list[tuple[str, dict[str, str]]],
    ) -> None:
        outcomes = await asyncio.gather(
            *(self._publish_one(exchange, f) for _, f in entries), return_exceptions=True
        )
        done, failure = [], None
        async with self._redis.pipeline(transaction=True) as pipe:
            for (entry_id, fields), outcome in zip(entries, outcomes, strict=True):
                if outcome == "unroutable":
                    pipe.xadd(keyspace.unroutable(shard), fields)
                elif isinstance(outcome, BaseException):
                    failure = failure or outcome
                    continue
                done.append(entry_id)
            if done:
                pipe.xack(keyspace.outbox(shard), GROUP, *done)
                pipe.xdel(keyspace.outbox(shard), *done)
                await pipe.execute()
        self.published += len(done)
        if failure is not None:
            raise failure  # reconnect; the rest stay pending to this consumer

    async def _publish_one(
        self, exchange: aio_pika.abc.AbstractExchange, fields: dict[str, str]
    ) -> str:
        event: dict[str, Any] = json.loads(fields["event"])
        message = aio_pika.Message(
            body=fields["event"].encode(),
            content_type=CONTENT_TYPE,
            message_id=event["id"],
            type=event["type"],
            app_id="authgate-issuer",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            await exchange.publish(
                message, routing_key=fields["routing_key"], mandatory=True, timeout=10
            )
        except aiormq.exceptions.PublishError:
            log.warning("relay: no queue bound for %s (event %s): kept in %s",
                        fields["routing_key"], event["id"], "outbox:unroutable")  # fmt: skip
            return "unroutable"
        return "published"
