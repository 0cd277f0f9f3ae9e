"""`user.deleted` from the events exchange: the user's members are deleted.

A durable quorum queue bound to the topic exchange with the routing key `user.deleted`.
A message is acked only after the deletion is committed, so a crash, a lost connection or
a failed commit leaves it in the queue to be delivered again; the event's `id` is recorded
in the same transaction as the deletion, so a redelivery changes nothing.

A poison message (not JSON, no `id` or `subject`, another `type`) can never succeed: it is
rejected at once and RabbitMQ moves it to `<queue>.dlq` through `<queue>.dlx`. Any other
failure (the disk, say) sends it back to the queue; quorum queues count the returns and
dead-letter a message after `x-delivery-limit` of them, so one bad message never holds up
the rest. Dead-lettering is at-least-once (RabbitMQ 3.10+): the queue keeps a message until
the dead-letter queue has it, so even a poison message is not lost.

The setting names one RabbitMQ node or several (a cluster). After a lost connection the
consumer connects to the next node, declares the queues again and consumes on (aio-pika's
`connect_robust` would only ever retry the one URL it was given); the service also starts
while RabbitMQ is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
import aio_pika.abc

from .settings import amqp_urls, redact_url
from .store import Store

log = logging.getLogger("members.events")

ROUTING_KEY = "user.deleted"
#: Returns before a failing message is dead-lettered.
DELIVERY_LIMIT = 5
#: Messages in flight at once; each waits for its own commit before its ack.
PREFETCH = 16
#: Seconds between rounds of reconnection attempts, and the bound of one attempt.
RECONNECT_INTERVAL = 1.0
CONNECT_TIMEOUT = 5


class PoisonMessage(ValueError):
    """A message that no retry can make succeed."""


@dataclass(frozen=True)
class UserDeleted:
    id: str
    type: str
    subject: str


def parse(body: bytes) -> UserDeleted:
    """The CloudEvent in `body`, or PoisonMessage saying what is wrong with it."""
    try:
        event: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonMessage("not JSON") from exc
    if not isinstance(event, dict):
        raise PoisonMessage("not a JSON object")
    fields = {name: event.get(name) for name in ("id", "type", "subject")}
    missing = [name for name, value in fields.items() if not (isinstance(value, str) and value)]
    if missing:
        raise PoisonMessage(f"{', '.join(missing)}: must be a non-empty string")
    # The queue is bound to user.deleted only; a body that claims another type is a
    # producer's mistake, not something to act on.
    if fields["type"] != ROUTING_KEY:
        raise PoisonMessage(f"type {fields['type']!r} is not {ROUTING_KEY!r}")
    return UserDeleted(str(fields["id"]), str(fields["type"]), str(fields["subject"]))


class UserDeletedConsumer:
    def __init__(self, store: Store, amqp_url: str, *, exchange: str, queue: str) -> None:
        self._store = store
        self._url = amqp_url
        self._exchange = exchange
        self._queue = queue
        self.state = "starting"
        self.processed = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.retried = 0

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queue": self._queue,
            "processed": self.processed,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "retried": self.retried,
        }

    async def run(self) -> None:
        """Consume until cancelled, from each node in turn while the one in use is lost."""
        self.state = "connecting"
        urls, attempt = amqp_urls(self._url), 0
        while True:
            url = urls[attempt % len(urls)]
            attempt += 1
            try:
                connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT)
            except Exception as exc:  # refused, unreachable, bad credentials
                log.warning("cannot connect to %s: %s", redact_url(url), exc)
                if attempt % len(urls) == 0:  # every node tried: wait before another round
                    await asyncio.sleep(RECONNECT_INTERVAL)
                continue
            try:
                lost = _lost(connection)
                await self._consume(connection)
                await lost
                log.warning("RabbitMQ connection to %s lost; reconnecting", redact_url(url))
                self.state = "reconnecting"
            except asyncio.CancelledError:
                self.state = "stopped"
                raise
            except Exception as exc:
                # Declaring failed on a live connection: say so and try again later.
                log.error("cannot consume %s: %s", self._queue, exc)
                self.state = "error"
                await asyncio.sleep(RECONNECT_INTERVAL)
            finally:
                await _close(connection)

    async def _consume(self, connection: aio_pika.abc.AbstractConnection) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        dlx = await channel.declare_exchange(
            f"{self._queue}.dlx", aio_pika.ExchangeType.FANOUT, durable=True
        )
        dlq = await channel.declare_queue(
            f"{self._queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx)
        exchange = await channel.declare_exchange(
            self._exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(self._queue, durable=True, arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": dlx.name,
            # at-least-once dead-lettering needs reject-publish overflow (RabbitMQ docs,
            # "Quorum Queues: at-least-once dead-lettering").
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })  # fmt: skip
        await queue.bind(exchange, routing_key=ROUTING_KEY)
        await queue.consume(self._on_message)
        self.state = "consuming"
        log.info("consuming %s from %s (%s)", ROUTING_KEY, self._exchange, self._queue)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            event = parse(message.body)
        except PoisonMessage as exc:
            log.warning("message %s dead-lettered: %s", message.message_id, exc)
            await message.reject(requeue=False)
            self.dead_lettered += 1
            return
        try:
            deleted = await asyncio.to_thread(
                self._store.delete_user, event.id, event.type, event.subject
            )
        except Exception as exc:
            count = (message.headers or {}).get("x-delivery-count", 0)
            log.warning("event %s failed (return %s of %d): %s",
                        event.id, count, DELIVERY_LIMIT, exc)  # fmt: skip
            self.retried += 1
            await message.nack(requeue=True)
            return
        # Committed: only now may RabbitMQ forget the message. Should this ack be lost
        # with the connection, the redelivery finds the event id and changes nothing.
        await message.ack()
        if deleted is None:
            self.duplicates += 1
            log.info("event %s already processed", event.id)
        else:
            self.processed += 1
            log.info("user %s deleted: %d members removed (event %s)",
                     event.subject, deleted, event.id)  # fmt: skip


def _lost(connection: aio_pika.abc.AbstractConnection) -> asyncio.Future[None]:
    """Done when the connection is lost: a dead node leaves the consumer waiting for
    messages for good, and aio-pika's own `closed()` is not resolved by a loss."""
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_close(*_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    connection.close_callbacks.add(on_close)
    return lost


async def _close(connection: aio_pika.abc.AbstractConnection) -> None:
    """Close, giving up after 2 s: a dead connection's close can wait on its socket."""
    closing = asyncio.ensure_future(connection.close())
    await asyncio.wait({closing}, timeout=2)
    if not closing.done():
        closing.cancel()
    closing.add_done_callback(lambda task: task.cancelled() or task.exception())
