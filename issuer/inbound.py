"""Lifecycle events from other services: a member service's `user.deleted` and
`user.suspended` end the user's sessions at once, like the admin actions do.

A durable quorum queue with a delivery limit and a dead-letter exchange: a message that
keeps failing (a poison message) goes to `<queue>.dlq` after `delivery_limit` tries and
does not hold up the others. Both queues are declared with `quorum_size` replicas
(`amqp.declare_quorum_queue`); on a lost node the consumer moves to the next one
(`amqp.keep_connected`) and the queue goes on with its other replicas. Processing is
idempotent by the CloudEvent `id`; the user is the event's `subject` (or `data.user_id`):
the id authgate gave it (X-Auth-User).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import redis.asyncio as aioredis

from .amqp import declare_quorum_queue, keep_connected

log = logging.getLogger("authgate.issuer")
PROCESSED = "authgate:inbound:processed:"
PROCESSED_TTL = 7 * 86400

#: routing key's last word → what to do to the user (deleted, suspended).
Action = Callable[[str, str, str], Awaitable[bool]]


class PoisonMessage(ValueError):
    """A message that can't be processed as it is: not JSON, not a CloudEvent, no user."""


def parse(body: bytes) -> tuple[str, str, str]:
    """(event id, event type, user id) of a CloudEvent, or PoisonMessage."""
    try:
        event: Any = json.loads(body)
    except ValueError as exc:
        raise PoisonMessage("not JSON") from exc
    if not isinstance(event, dict) or event.get("specversion") != "1.0":
        raise PoisonMessage("not a CloudEvent 1.0")
    data = event["data"] if isinstance(event.get("data"), dict) else {}
    event_id, kind, user = (
        event.get("id"),
        event.get("type"),
        event.get("subject") or data.get("user_id"),
    )
    if not (isinstance(event_id, str) and isinstance(kind, str) and isinstance(user, str)):
        raise PoisonMessage("id, type and subject (or data.user_id) are required")
    if not (event_id and kind and user):
        raise PoisonMessage("id, type and subject (or data.user_id) must not be empty")
    return event_id, kind, user


class LifecycleConsumer:
    def __init__(
        self, redis: aioredis.Redis, amqp_url: str, *, exchange: str, routing_keys: tuple[str, ...],
        queue: str, delivery_limit: int, quorum_size: int, act: Action,
    ) -> None:  # fmt: skip
        self._redis = redis
        self._url = amqp_url
        self._exchange = exchange
        self._keys = routing_keys
        self._queue = queue
        self._limit = delivery_limit
        self._quorum_size = quorum_size
        self._act = act
        self.connected = False
        self.last_error: str | None = None
        self.processed = 0
        self.failed = 0

    async def run(self) -> None:
        await keep_connected(self._url, "inbound", self._session, self._gone)

    async def _session(self, connection: aio_pika.abc.AbstractConnection) -> None:
        await self._declare(connection)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=16)
        queue = await channel.get_queue(self._queue, ensure=False)
        self.connected = True
        log.info("inbound: consuming %s from %s", ", ".join(self._keys), self._exchange)
        async with queue.iterator() as messages:
            async for message in messages:
                await self._handle(message)

    def _gone(self, reason: str) -> None:
        self.connected, self.last_error = False, reason

    async def _declare(self, connection: aio_pika.abc.AbstractConnection) -> None:
        channel = await connection.channel()
        dlx = await channel.declare_exchange(
            f"{self._queue}.dlx", aio_pika.ExchangeType.FANOUT, durable=True
        )
        dlq = f"{self._queue}.dlq"
        await declare_quorum_queue(connection, dlq, self._quorum_size, {})
        await (await channel.get_queue(dlq, ensure=False)).bind(dlx)
        exchange = await channel.declare_exchange(
            self._exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await declare_quorum_queue(connection, self._queue, self._quorum_size, {
            "x-delivery-limit": self._limit,
            "x-dead-letter-exchange": dlx.name,
        })  # fmt: skip
        queue = await channel.get_queue(self._queue, ensure=False)
        for key in self._keys:
            await queue.bind(exchange, routing_key=key)
        await channel.close()

    async def _handle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event_id, kind, user = parse(message.body)
            # The routing key decides what happens (it is what the queue is bound to);
            # a body claiming another action than its routing key is refused.
            action = (message.routing_key or "").rsplit(".", 1)[-1]
            if kind.rsplit(".", 1)[-1] != action:
                raise PoisonMessage(
                    f"type {kind!r} does not match routing key {message.routing_key!r}"
                )
            if await self._redis.exists(PROCESSED + event_id):
                log.info("inbound: event %s already processed", event_id)
            else:
                if await self._act(action, user, event_id):
                    log.info("inbound: %s for user %s (event %s)", kind, user, event_id)
                await self._redis.set(PROCESSED + event_id, "1", ex=PROCESSED_TTL)
            await message.ack()
            self.processed += 1
        except Exception as exc:  # any failure: back to the queue, counted by RabbitMQ
            self.failed += 1
            count = (message.headers or {}).get("x-delivery-count", 0)
            log.warning("inbound: message %s failed (delivery %s of %d): %s",
                        message.message_id, count, self._limit, exc)  # fmt: skip
            await message.nack(requeue=True)
