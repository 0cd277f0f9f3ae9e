"""RabbitMQ helpers for the tests: a sink that records what reaches an exchange, a
publisher, and clean-up of what a test declared."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika

from .polling import wait_until


def amqp_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def via_proxy(url: str, proxy: Any) -> str:
    """`url`, reached through a test proxy on loopback instead."""
    parts = urlsplit(url)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))


@dataclass(frozen=True)
class Received:
    routing_key: str
    message_id: str | None
    content_type: str | None
    delivery_mode: int | None
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class EventSink:
    """A queue of its own bound to `exchange` (topic, `pattern`), filled in the background."""

    def __init__(self, url: str, exchange: str, pattern: str = "#") -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(url, exchange, pattern)), daemon=True
        )
        self._thread.start()
        if not self._ready.wait(15) or self._error:
            raise RuntimeError(f"event sink did not start: {self._error}")

    async def _main(self, url: str, exchange: str, pattern: str) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            connection = await aio_pika.connect(url, timeout=10)
        except Exception as exc:
            self._error = exc
            self._ready.set()
            return
        async with connection:
            channel = await connection.channel()
            source = await channel.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(source, routing_key=pattern)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                async with message.process():
                    with self._lock:
                        self.received.append(Received(message.routing_key or "", message.message_id,
                                                      message.content_type, message.delivery_mode, message.body))  # fmt: skip

            await queue.consume(on_message)
            self._ready.set()
            await self._stop.wait()

    def events(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 15
    ) -> list[Received]:
        wait_until(lambda: done(self.events()), timeout,
                   lambda: f"timed out; received {[r.routing_key for r in self.events()]}")  # fmt: skip
        return self.events()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


def publish(
    url: str, exchange: str, routing_key: str, body: bytes, message_id: str | None = None
) -> None:
    async def main() -> None:
        connection = await aio_pika.connect(url, timeout=10)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            target = await channel.declare_exchange(
                exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await target.publish(aio_pika.Message(body=body, message_id=message_id,
                                                  delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key)  # fmt: skip

    asyncio.run(main())


def queue_depth(url: str, queue: str) -> int:
    async def main() -> int:
        connection = await aio_pika.connect(url, timeout=10)
        async with connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)

    return asyncio.run(main())


def delete(url: str, queues: list[str], exchanges: list[str]) -> None:
    async def main() -> None:
        connection = await aio_pika.connect(url, timeout=10)
        async with connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)
            for exchange in exchanges:
                await channel.exchange_delete(exchange)

    asyncio.run(main())
