"""One RabbitMQ connection kept up for a long-running loop (the relay, the consumer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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


def _lost(name: str, url: str, reason: str, last: str | None, gone: Callable[[str], None]) -> str:
    """Report a loss: a warning when the reason is new, else at debug level (no log
    storm while RabbitMQ stays away or keeps refusing the same way)."""
    if reason != last:
        log.warning("%s: RabbitMQ at %s unavailable: %s", name, redact_url(url), reason)
    else:
        log.debug("%s: still unavailable: %s", name, reason)
    gone(reason)
    return reason


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
    backoff, last = 0.1, None
    while True:
        connection = None
        try:
            connection = await _connect(url)
            backoff, since = 0.1, time.monotonic()
            try:
                await session(connection)
            finally:
                if time.monotonic() - since > 5:
                    last = None  # it had been working: a new outage is news again
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being stopped
            # aio-pika cancels its own waiters when a connection dies; that reaches us as
            # a CancelledError that is not ours. It is a lost connection like any other.
            last = _lost(name, url, "connection lost (cancelled)", last, gone)
        except Exception as exc:
            last = _lost(name, url, f"{type(exc).__name__}: {exc}", last, gone)
        finally:
            if connection is not None:
                await _close(connection)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
