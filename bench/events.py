"""Events benchmark: events/s through the Redis outbox and the relay (publisher confirms),
and the lag from the action to delivery, against a bare aio-pika publish loop with
confirms, side by side in one run.

    bin/bench-events [--events 20000]

Both publish to the same exchange with a queue bound and drained, in batches of the
relay's size. Outbox events are written the way the issuer writes them (MULTI
pipelines of XADDs, as many actions at once would); the lag is from an event's XADD to
its arrival at the consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time

import aio_pika
import redis.asyncio as aioredis

from authgate import redis_client
from issuer import keyspace
from issuer.outbox import Outbox
from issuer.relay import Relay
from stack import services
from stack.processes import run_stoppable

BATCH = 200


class Drain:
    """A queue bound to the exchange; records arrival times by event number."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.done = asyncio.Event()
        self.expected = 0
        self.phase = ""

    async def start(self, connection: aio_pika.abc.AbstractConnection, exchange: str) -> None:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._on_message)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        data = json.loads(message.body)["data"]
        if data["phase"] != self.phase:
            return  # a straggler of an earlier phase
        self.arrived[data["n"]] = time.perf_counter()
        if len(self.arrived) >= self.expected:
            self.done.set()

    def reset(self, expected: int) -> str:
        """Start a phase: a fresh tally; the tag its events carry."""
        self.arrived, self.expected, self.phase = {}, expected, secrets.token_hex(4)
        self.done.clear()
        return self.phase

    async def wait(self) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), 120)
        except TimeoutError:
            raise SystemExit(
                f"bench: only {len(self.arrived)} of {self.expected} events arrived"
            ) from None


async def bare(
    exchange: aio_pika.abc.AbstractExchange, outbox: Outbox, drain: Drain, count: int
) -> float:
    phase = drain.reset(count)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        batch = range(first, min(first + BATCH, count))
        await asyncio.gather(*(_publish(exchange, outbox, phase, n) for n in batch))
    await drain.wait()
    return count / (time.perf_counter() - started)


async def _publish(
    exchange: aio_pika.abc.AbstractExchange, outbox: Outbox, phase: str, n: int
) -> None:
    body = outbox.event("user.updated", "bench", {"phase": phase, "n": n})["event"].encode()
    message = aio_pika.Message(body=body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await exchange.publish(message, routing_key="user.updated", mandatory=True)


async def through_outbox(
    redis: aioredis.Redis, outbox: Outbox, drain: Drain, count: int, per_second: float | None = None
) -> tuple[float, list[float]]:
    """Write `count` events as the issuer does (MULTI pipelines), as fast as possible or
    paced at `per_second` in 10 ms steps, and wait for all to arrive; (events/s, each
    event's lag in seconds, sorted)."""
    phase = drain.reset(count)
    written: dict[int, float] = {}
    step = BATCH if per_second is None else max(1, int(per_second / 100))
    started = time.perf_counter()
    for first in range(0, count, step):
        batch = range(first, min(first + step, count))
        async with redis.pipeline(transaction=True) as pipe:
            for n in batch:
                outbox.queue(pipe, "user.updated", "bench", {"phase": phase, "n": n})
            now = time.perf_counter()
            await pipe.execute()
        written.update(dict.fromkeys(batch, now))
        pause = (
            0.0
            if per_second is None
            else started + (first + step) / per_second - time.perf_counter()
        )
        await asyncio.sleep(max(0.0, pause))  # the relay runs alongside, as in the issuer
    await drain.wait()
    rate = count / (time.perf_counter() - started)
    return rate, sorted(drain.arrived[n] - written[n] for n in range(count))


async def measure(count: int, redis_url: str, amqp_url: str) -> None:
    redis = redis_client.connect(redis_url)
    await redis.delete(*map(keyspace.outbox, keyspace.ALL_SHARDS))
    name = f"authgate.bench.events.{secrets.token_hex(3)}"
    outbox = Outbox("https://issuer.bench.test")
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        drain = Drain()
        consumer = await aio_pika.connect(amqp_url)  # a connection of its own, as a consumer has
        await drain.start(consumer, name)
        await bare(exchange, outbox, drain, min(count, 2000))  # warm-up
        bare_rate = await bare(exchange, outbox, drain, count)
        relay = Relay(redis, amqp_url, name, batch=BATCH)
        task = asyncio.create_task(relay.run())
        while not relay.connected:  # noqa: ASYNC110 - the relay offers no event to wait on
            await asyncio.sleep(0.01)
        relay_rate, flooded = await through_outbox(redis, outbox, drain, count)
        paced = relay_rate / 2
        _, lags = await through_outbox(
            redis, outbox, drain, min(count, int(paced * 5)), per_second=paced
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await exchange.delete()
        await consumer.close()
    await redis.delete(*map(keyspace.outbox, keyspace.ALL_SHARDS))
    await redis.aclose()
    lags.sort()
    print(
        f"\nevents benchmark: {count} events, batches of {BATCH}, persistent, publisher confirms\n"
    )
    print(f"{'path':<44}{'events/s':>10}")
    print(f"{'bare aio-pika publish loop':<44}{bare_rate:>10.0f}")
    print(f"{'outbox (Redis MULTI) + relay':<44}{relay_rate:>10.0f}")
    print(f"\nratio outbox+relay / bare: {relay_rate / bare_rate:.2f}")

    def pct(q: float) -> float:
        return lags[min(len(lags) - 1, int(q * len(lags)))] * 1000

    mean = statistics.fmean(lags) * 1000
    print(f"lag action -> delivery at {paced:.0f} events/s (half the relay's rate):"
          f" p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms, max {lags[-1] * 1000:.1f} ms,"
          f" mean {mean:.1f} ms")  # fmt: skip
    print(f"(with all {count} written at once, the backlog decides: the last arrived"
          f" {flooded[-1] * 1000:.0f} ms after its write)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10000, help="events per path (default 10000)")
    # A Redis database no issuer uses.
    services.add_arguments(parser, "redis", "amqp", redis_db=6)
    args = parser.parse_args()

    def run() -> None:
        with services.running(args, "redis", "amqp") as urls:
            asyncio.run(measure(args.events, urls["redis"], urls["amqp"]))

    return run_stoppable(run, "bench-events")


if __name__ == "__main__":
    sys.exit(main())
