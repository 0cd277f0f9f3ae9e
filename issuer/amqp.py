"""One RabbitMQ connection kept up for a long-running loop (the relay, the consumer),
to one broker or to the nodes of a cluster in turn.

The setting holds one `amqp://` URL or several separated by commas, one per node
(docs/scaling.md). aio-pika's `connect_robust` takes one URL and keeps retrying it
(aio-pika issue #141), so the rotation is ours: a connection starts at the node after
the one last lost, and tries each node once before backing off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import aiormq

from authgate import config
from authgate.config import redact_url

log = logging.getLogger("authgate.issuer")

#: Between two URLs: a comma followed by a scheme (any, so that a wrong one is named),
#: so that a comma inside a password (RFC 3986 allows one unescaped there) stays in it.
_SEPARATOR = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_parse_one = config.url("amqp", "amqps")


def node_urls(value: str) -> tuple[str, ...]:
    """The broker URLs in a setting, in order; ValueError naming any that is not one."""
    urls = []
    for item in _SEPARATOR.split(value.strip()):
        parsed = _parse_one(item)
        if parsed is None:
            raise ValueError("has an empty URL between commas")
        urls.append(parsed)
    return tuple(urls)


def parse_setting(raw: str) -> str:
    """The setting's parser: every URL checked; kept as written, one string."""
    return ",".join(node_urls(raw))


def shown(value: str) -> str:
    """The setting with every password redacted, for log lines."""
    return ",".join(redact_url(url) for url in _SEPARATOR.split(value.strip()))


class NoNodeAnswered(ConnectionError):
    """Every node was tried once and none took the connection."""


def _lost(name: str, url: str, reason: str, last: str | None, gone: Callable[[str], None]) -> str:
    """Report a loss: a warning when the reason is new, else at debug level (no log
    storm while RabbitMQ stays away or keeps refusing the same way)."""
    if reason != last:
        log.warning("%s: RabbitMQ at %s unavailable: %s", name, url, reason)
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


async def connect_first(
    urls: Sequence[str], start: int = 0
) -> tuple[aio_pika.abc.AbstractConnection, int]:
    """A connection to the first node that takes one, trying each once from `start`
    on (wrapping round); the connection and the node's index. Else NoNodeAnswered,
    saying what each node answered."""
    problems = []
    for step in range(len(urls)):
        index = (start + step) % len(urls)
        try:
            return await _connect(urls[index]), index
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure to connect moves on to the next node
            problems.append(f"{redact_url(urls[index])}: {type(exc).__name__}: {exc}")
    raise NoNodeAnswered("; ".join(problems))


GROUP_SIZE = "x-quorum-initial-group-size"


async def declare_quorum_queue(
    connection: aio_pika.abc.AbstractConnection, name: str, size: int, arguments: dict[str, Any]
) -> None:
    """Declare the durable quorum queue `name` with `size` replicas (RabbitMQ places at
    most one per node, so a smaller cluster gets one on each node) and `arguments`.

    A queue declared before with no size, or another, is kept as it is: RabbitMQ refuses
    to redeclare it with a changed `x-quorum-initial-group-size` (PRECONDITION_FAILED,
    seen on 3.10), and an existing queue's replicas are changed with `rabbitmq-queues
    grow` or `add_member`, never by declaring (docs/scaling.md)."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments={
            "x-queue-type": "quorum", GROUP_SIZE: size, **arguments,
        })  # fmt: skip
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        if GROUP_SIZE not in str(exc):
            raise
        log.warning("queue %s exists with another replica count than %d; kept as it is "
                    "(rabbitmq-queues grow changes it)", name, size)  # fmt: skip
        channel = await connection.channel()  # the refusal closed the first one
        await channel.declare_queue(name, passive=True)
    await channel.close()


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


async def _while_connected(
    work: Awaitable[None], connection: aio_pika.abc.AbstractConnection
) -> None:
    """Run `work` until it ends or the connection is lost, whichever comes first. A
    consumer's message iterator does not end when its node dies (seen on a killed
    cluster node: it waited on for good), so the loss is watched apart, through the
    connection's close callbacks (aio-pika's `closed()` is not resolved by a loss)."""
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_close(*_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    connection.close_callbacks.add(on_close)
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            # Its clean-up may wait on the dead socket: bounded, like `_close`.
            await asyncio.wait({task}, timeout=2)
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
    if task.done() and not task.cancelled():
        task.result()  # it ended first: its outcome is the session's
        return
    raise ConnectionError("the RabbitMQ connection was lost")


async def keep_connected(
    url: str,
    name: str,
    session: Callable[[aio_pika.abc.AbstractConnection], Awaitable[None]],
    gone: Callable[[str], None],
) -> None:
    """Run `session` on a fresh connection, again and again, with backoff between tries;
    `gone(reason)` after each loss. `url` may name several nodes (`node_urls`): after a
    loss the next node is tried first, since the one just lost is likely down. Returns
    only by cancellation."""
    urls = node_urls(url)
    backoff, last, start = 0.1, None, 0
    while True:
        connection, where = None, shown(url)
        try:
            connection, index = await connect_first(urls, start)
            where, start = redact_url(urls[index]), index + 1
            if len(urls) > 1:
                log.info("%s: connected to RabbitMQ at %s", name, where)
            backoff, since = 0.1, time.monotonic()
            try:
                await _while_connected(session(connection), connection)
            finally:
                if time.monotonic() - since > 5:
                    last = None  # it had been working: a new outage is news again
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being stopped
            # aio-pika cancels its own waiters when a connection dies; that reaches us as
            # a CancelledError that is not ours. It is a lost connection like any other.
            last = _lost(name, where, "connection lost (cancelled)", last, gone)
        except Exception as exc:
            last = _lost(name, where, f"{type(exc).__name__}: {exc}", last, gone)
        finally:
            if connection is not None:
                await _close(connection)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
