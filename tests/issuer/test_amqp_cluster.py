"""The issuer on a three-node RabbitMQ cluster (issue 19, item 5): the rotation over the
nodes of `AUTHGATE_AMQP_URL`, the outbox relay losing nothing when the node it publishes
to is killed, the lifecycle consumer resuming on another node, quorum queues declared
with their replicas. The cluster is the session's (`tests/conftest.py`); a test that
kills a node starts it again on its way out, and each test heals the cluster (waits
until it is whole) first thing."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Callable

import aio_pika
import pytest

from authgate import redis_client
from issuer import keyspace
from issuer.amqp import (
    NoNodeAnswered,
    connect_first,
    declare_quorum_queue,
    node_urls,
    shown,
)
from issuer.inbound import LifecycleConsumer
from issuer.outbox import GROUP, USER_UPDATED, Outbox, stream_of
from issuer.relay import Relay
from issuer.settings import load_settings
from stack.processes import free_ports
from stack.rabbitmq_cluster import RabbitMQCluster

from ..conftest import figure

#: A Redis of its own (`private_redis`): the session's issuers run relays on others.
CLUSTER_DB = 12
EVENTS = 1000
#: Written every 20 ms while the node is killed, until the relay publishes again.
WRITTEN_PER_TICK = 10


async def _until(done: Callable[[], bool], within: float, what: str) -> float:
    """Poll `done` (never a fixed sleep); the monotonic time it first held."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic()


def _members(cluster: RabbitMQCluster, queue: str) -> set[str]:
    listing = cluster.nodes[2].ctl("list_queues", "name", "members", "--quiet")
    for line in listing.splitlines():
        name, _, members = line.partition("\t")
        if name == queue:
            return {node for node in cluster.all_names if node in members}
    raise AssertionError(f"{queue} not in {listing!r}")


# --- the setting ----------------------------------------------------------------------


def test_one_url_or_several_separated_by_commas() -> None:
    one = "amqp://guest:guest@127.0.0.1:5672/"
    assert node_urls(one) == (one,)
    several = "amqp://u:p@rabbit-1:5672/, amqp://u:p@rabbit-2:5672/,amqps://u:p@rabbit-3/"
    assert node_urls(several) == (
        "amqp://u:p@rabbit-1:5672/",
        "amqp://u:p@rabbit-2:5672/",
        "amqps://u:p@rabbit-3/",
    )
    # RFC 3986 allows a comma unescaped in the userinfo: it stays in its URL.
    assert node_urls("amqp://u:a,b@h1/,amqp://u:a,b@h2/") == (
        "amqp://u:a,b@h1/",
        "amqp://u:a,b@h2/",
    )
    # Every password is redacted when the setting is shown, not only the first.
    assert shown("amqp://u:s3cret@h1/,amqp://u:s3cret@h2/") == "amqp://u:***@h1/,amqp://u:***@h2/"


@pytest.mark.parametrize(
    "raw",
    ["amqp://u:s3cret@h1/,http://h2/", "amqp://u:s3cret@h1/,amqp:///vhost", "redis://h1/"],
)
def test_a_bad_node_url_is_refused_without_its_password(raw: str) -> None:
    with pytest.raises(Exception) as refused:
        load_settings([], {"AUTHGATE_AMQP_URL": raw})
    assert "AUTHGATE_AMQP_URL" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_settings_keep_the_list_and_the_quorum_size() -> None:
    urls = "amqp://u:p@rabbit-1/,amqp://u:p@rabbit-2/"
    settings = load_settings([], {"AUTHGATE_AMQP_URL": urls, "AUTHGATE_AMQP_QUORUM_SIZE": "5"})
    assert node_urls(settings.amqp_url) == ("amqp://u:p@rabbit-1/", "amqp://u:p@rabbit-2/")
    assert settings.amqp_quorum_size == 5
    assert load_settings([], {}).amqp_quorum_size == 3


# --- the rotation, on real nodes ------------------------------------------------------


def test_rotation_starts_where_asked_and_moves_past_nodes_that_refuse(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    rabbitmq_cluster.heal()
    live = rabbitmq_cluster.urls
    dead = [f"amqp://guest:guest@127.0.0.1:{port}/" for port in free_ports(2)]

    async def index(urls: list[str], start: int) -> int:
        connection, at = await connect_first(urls, start)
        await connection.close()
        return at

    async def main() -> None:
        assert await index(live, 0) == 0
        assert await index(live, 2) == 2
        assert await index([live[0], dead[0], live[1]], 1) == 2  # one down → the next
        assert await index([dead[0], live[0]], 0) == 1
        assert await index([live[0], dead[0], dead[1]], 1) == 0  # wraps round
        with pytest.raises(NoNodeAnswered) as none:
            await connect_first(dead, 0)
        assert all(f":{url.rsplit(':', 1)[1]}" in str(none.value) for url in dead)

    asyncio.run(main())


# --- quorum queues --------------------------------------------------------------------


def test_quorum_queues_get_their_replicas_and_an_older_declaration_is_kept(
    rabbitmq_cluster: RabbitMQCluster,
) -> None:
    rabbitmq_cluster.heal()
    names = [f"t-quorum-{secrets.token_hex(4)}-{n}" for n in range(3)]

    async def main() -> None:
        connection = await aio_pika.connect(rabbitmq_cluster.urls[0])
        async with connection:
            await declare_quorum_queue(connection, names[0], 3, {})
            await declare_quorum_queue(connection, names[1], 2, {})
            # Declared before authgate set a size (as before this change): RabbitMQ
            # refuses a redeclaration with one (PRECONDITION_FAILED); the queue is kept.
            channel = await connection.channel()
            await channel.declare_queue(
                names[2], durable=True, arguments={"x-queue-type": "quorum"}
            )
            await declare_quorum_queue(connection, names[2], 3, {})
            await declare_quorum_queue(connection, names[1], 3, {})  # kept with 2

    try:
        asyncio.run(main())
        assert _members(rabbitmq_cluster, names[0]) == set(rabbitmq_cluster.all_names)
        assert len(_members(rabbitmq_cluster, names[1])) == 2
        assert _members(rabbitmq_cluster, names[2])  # still there, still a quorum queue
    finally:
        asyncio.run(_delete(rabbitmq_cluster.urls[1], names))


async def _delete(url: str, queues: list[str]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)


# --- the relay: a node killed under it ------------------------------------------------


def test_the_relay_loses_nothing_when_its_node_is_killed(
    rabbitmq_cluster: RabbitMQCluster,
    private_redis: Callable[[int], str],
    pytestconfig: pytest.Config,
) -> None:
    rabbitmq_cluster.heal()
    urls = rabbitmq_cluster.urls
    exchange, queue = f"t-cluster-{secrets.token_hex(4)}", f"t-cluster-{secrets.token_hex(4)}"

    async def main() -> dict[str, float]:
        redis = redis_client.connect(private_redis(CLUSTER_DB))
        streams = [keyspace.outbox(shard) for shard in keyspace.ALL_SHARDS]
        await redis.delete(*streams)
        outbox = Outbox("urn:test:cluster")
        expected: set[str] = set()

        async def write(count: int) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(count):
                    n = len(expected)
                    fields = outbox.event(USER_UPDATED, f"user-{n}", {"n": n})
                    pipe.xadd(stream_of(f"user-{n}"), fields)
                    expected.add(json_id(fields))
                await pipe.execute()

        # Events keep being written, as an issuer under use does, until the relay is
        # publishing again after the kill: there is always work left for it to resume.
        await write(EVENTS)
        writing = asyncio.Event()
        writing.set()

        async def keep_writing() -> None:
            while writing.is_set():
                await write(WRITTEN_PER_TICK)
                await asyncio.sleep(0.02)

        # Downstream: a quorum queue (three replicas) read through the last node, which
        # stays up; it sees every event at least once and keeps each id once.
        sink = await aio_pika.connect(urls[2])
        channel = await sink.channel()
        source = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        await declare_quorum_queue(sink, queue, 3, {})
        bound = await channel.get_queue(queue, ensure=False)
        await bound.bind(source, routing_key="#")
        received: list[str] = []

        async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            received.append(str(message.message_id))

        await bound.consume(record)

        relay = Relay(redis, ",".join(urls), exchange, consumer="cluster-test", batch=200)
        await relay.ensure_group()
        running = asyncio.ensure_future(relay.run())
        writer = asyncio.ensure_future(keep_writing())
        try:
            await _until(lambda: relay.published >= 500, 60, "the relay publishing")
            at_kill = relay.published
            killed = time.monotonic()
            # Killing takes a moment (waiting for the process to be gone): watched meanwhile.
            kill = asyncio.ensure_future(asyncio.to_thread(rabbitmq_cluster.kill, 0))
            await _until(lambda: relay.last_error is not None, 30, "the relay losing its node")
            # Nothing is published between the loss and the next connection.
            at_loss = relay.published
            reconnected = await _until(lambda: relay.connected, 30, "the relay reconnecting")
            resumed = await _until(lambda: relay.published > at_loss, 30, "publishing again")
            writing.clear()
            await writer
            await kill
            done = await _until(lambda: expected <= set(received), 90,
                                f"every event downstream ({len(set(received))} of {len(expected)})")  # fmt: skip
        finally:
            writing.clear()
            running.cancel()
            await asyncio.gather(running, writer, return_exceptions=True)
            rabbitmq_cluster.revive()
        assert set(received) == expected  # nothing lost, nothing foreign
        assert relay.last_error is not None  # it did lose its node
        for stream in streams:
            assert await redis.xlen(stream) == 0  # all confirmed, acknowledged and deleted
            assert (await redis.xpending(stream, GROUP))["pending"] == 0
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await sink.close()
        await redis.delete(*streams)
        await redis.aclose()
        return {"reconnect": reconnected - killed, "resume": resumed - killed,
                "done": done - killed, "duplicates": len(received) - len(expected),
                "at_kill": at_kill, "events": len(expected)}  # fmt: skip

    seen = asyncio.run(main())
    figure(pytestconfig, f"relay, node killed after {seen['at_kill']:.0f} events published: "
           f"reconnected to the next node {seen['reconnect']:.2f} s after the kill, publishing "
           f"again at {seen['resume']:.2f} s, all {seen['events']:.0f} downstream at "
           f"{seen['done']:.2f} s, {seen['duplicates']:.0f} duplicate(s) deduplicated by id")  # fmt: skip


def json_id(fields: dict[str, str]) -> str:
    return str(json.loads(fields["event"])["id"])


# --- the lifecycle consumer: its node killed ------------------------------------------


def test_the_lifecycle_consumer_resumes_on_another_node(
    rabbitmq_cluster: RabbitMQCluster,
    private_redis: Callable[[int], str],
    pytestconfig: pytest.Config,
) -> None:
    rabbitmq_cluster.heal()
    n0, n1, n2 = rabbitmq_cluster.urls
    exchange, queue = f"t-member-{secrets.token_hex(4)}", f"t-lifecycle-{secrets.token_hex(4)}"
    acted: list[str] = []

    async def act(action: str, user: str, event_id: str) -> bool:
        acted.append(event_id)
        return True

    async def main() -> dict[str, float]:
        redis = redis_client.connect(private_redis(CLUSTER_DB))
        # Node 1 first in its list: that is the node it connects to, and the one killed.
        consumer = LifecycleConsumer(
            redis, f"{n1},{n0},{n2}", exchange=exchange, routing_keys=("user.deleted",),
            queue=queue, delivery_limit=5, quorum_size=3, act=act,
        )  # fmt: skip
        running = asyncio.ensure_future(consumer.run())
        try:
            await _until(lambda: consumer.connected, 30, "the consumer consuming")
            members = await asyncio.to_thread(_members, rabbitmq_cluster, queue)
            assert members == set(rabbitmq_cluster.all_names)
            first = await _publish_deleted(n2, exchange)
            await _until(lambda: first in acted, 15, "the first event acted on")
            killed = time.monotonic()
            kill = asyncio.ensure_future(asyncio.to_thread(rabbitmq_cluster.kill, 1))
            await _until(
                lambda: consumer.last_error is not None, 30, "the consumer losing its node"
            )
            back = await _until(lambda: consumer.connected, 30, "the consumer consuming again")
            await kill
            second = await _publish_deleted(n2, exchange)
            handled = await _until(lambda: second in acted, 30, "the second event acted on")
            # With node 1 dead, the rotation from it lands on the next live node.
            connection, at = await connect_first([n0, n1, n2], 1)
            await connection.close()
            assert at == 2
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await _delete(n2, [queue, f"{queue}.dlq"])
            await redis.aclose()
        assert acted == [first, second]
        return {"back": back - killed, "handled": handled - killed}

    seen = asyncio.run(main())
    figure(pytestconfig, f"lifecycle consumer, its node killed: consuming on another node "
           f"{seen['back']:.2f} s later; an event published then handled at "
           f"{seen['handled']:.2f} s")  # fmt: skip


async def _publish_deleted(url: str, exchange: str) -> str:
    event_id = str(uuid.uuid4())
    body = (
        f'{{"specversion":"1.0","id":"{event_id}","type":"user.deleted",'
        f'"source":"urn:test","subject":"u-{event_id[:8]}"}}'
    ).encode()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        await target.publish(
            aio_pika.Message(body=body, message_id=event_id,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            "user.deleted",
        )  # fmt: skip
    return event_id
