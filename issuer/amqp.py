"""One RabbitMQ connection kept up for a long-running loop (the relay, the consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq

from authgate.config import redact_url

log = logging.getLogger("authgate.issuer")

#: What a lost or refused RabbitMQ connection raises, at any step.
AMQP_ERRORS = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.AMQPException,
    OSError,  # ConnectionError included
    TimeoutError,
)


def _lost(name: str, url: str, reason: str, reported: bool, gone: Callable[[str], None]) -> bool:
    if not reported:  # once per outage, not once per retry
        log.warning("%s: RabbitMQ at %s unavailable: %s", name, redact_url(url), reason)
    else:
        log.debug("%s: still unavailable: %s", name, reason)
    gone(reason)
    return True


async def _connect(url: str) -> aio_pika.abc.AbstractConnection:
    """Connect within 10 s. aio-pika's own timeout does not bound every step: a connection
    cut during the handshake was seen to leave `connect` waiting for good."""
    connecting = asyncio.ensure_future(aio_pika.connect(url, timeout=5))
    await asyncio.wait({connecting}, timeout=10)
    if not connecting.done():
        connecting.cancel()
        # Should it finish after all, close what it made.
        connecting.add_done_callback(
            lambda task: (
                None
                if task.cancelled() or task.exception()
                else asyncio.ensure_future(task.result().close())
            )
        )
        raise TimeoutError("connecting to RabbitMQ took over 10 s")
    return connecting.result()


async def _close(connection: aio_pika.abc.AbstractConnection) -> None:
    """Close, but give up after 2 s: a dead connection's close can wait on its socket
    forever, and ignore cancellation (so `wait_for` would wait too)."""
    closing = asyncio.ensure_future(connection.close())
    await asyncio.wait({closing}, timeout=2)
    if closing.done():
        with contextlib.suppress(Exception):
            closing.result()
    else:
        closing.cancel()
        closing.add_done_callback(lambda task: task.cancelled() or task.exception())


async def keep_connected(
    url: str,
    name: str,
    session: Callable[[aio_pika.abc.AbstractConnection], Awaitable[None]],
    gone: Callable[[str], None],
) -> None:
    """Run `session` on a fresh connection, again and again, with backoff between tries;
    `gone(reason)` after each loss. Returns only by cancellation."""
    backoff, reported = 0.1, False
    while True:
        connection = None
        try:
            connection = await _connect(url)
            backoff, reported = 0.1, False
            await session(connection)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being stopped
            # aio-pika cancels its own waiters when a connection dies; that reaches us as
            # a CancelledError that is not ours. It is a lost connection like any other.
            reported = _lost(name, url, "connection lost (cancelled)", reported, gone)
        except Exception as exc:
            reported = _lost(name, url, f"{type(exc).__name__}: {exc}", reported, gone)
        finally:
            if connection is not None:
                await _close(connection)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
