"""`authgate-issuer events tail [--routing-key PATTERN]`: print events as they flow.

A temporary queue (exclusive, deleted on exit) bound to the events exchange with the
pattern (AMQP topic syntax: `user.*`, `session.#`; default `#`, everything). One line per
event: time, routing key, subject, data. Ctrl-C stops it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

import aio_pika

from .amqp import NoNodeAnswered, connect_first, node_urls


def line(routing_key: str, body: bytes) -> str:
    try:
        event = json.loads(body)
        data = json.dumps(event.get("data"), ensure_ascii=False, separators=(",", ":"))
        return (
            f"{event.get('time', '-')}  {routing_key:<22} {event.get('subject') or '-':<24} {data}"
        )
    except (ValueError, AttributeError):
        return f"-  {routing_key:<22} (not a CloudEvent) {body[:200]!r}"


async def tail(
    amqp_url: str, exchange: str, pattern: str, out: TextIO = sys.stdout, limit: int | None = None
) -> int:
    try:
        connection, _ = await connect_first(node_urls(amqp_url))
    except NoNodeAnswered as exc:
        print(f"authgate-issuer: cannot reach RabbitMQ: {exc}", file=sys.stderr)
        return 1
    seen = 0
    async with connection:
        channel = await connection.channel()
        source = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(source, routing_key=pattern)
        print(f"tailing {exchange} ({pattern}); Ctrl-C stops", file=sys.stderr, flush=True)
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    print(line(message.routing_key or "", message.body), file=out, flush=True)
                seen += 1
                if limit is not None and seen >= limit:
                    break
    return 0


def run(amqp_url: str, exchange: str, pattern: str) -> int:
    try:
        return asyncio.run(tail(amqp_url, exchange, pattern))
    except KeyboardInterrupt:
        return 0
