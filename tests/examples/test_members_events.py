"""The member service's `user.deleted` consumer on a real RabbitMQ: a user's members go,
a redelivered event changes nothing, poison goes to the DLQ without holding up the rest,
and nothing is lost while the service or its connection is down."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.rabbitmq_cluster import RabbitMQCluster

from ..amqp import amqp_address, publish, queue_depth, via_proxy
from ..conftest import figure
from ..harness import TcpProxy
from ..polling import wait_until
from .members import MembersProcess, Names, identity


def user(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def user_deleted(subject: str, event_id: str | None = None, /, **changes: Any) -> dict[str, Any]:
    """A `user.deleted` CloudEvent in the issuer's shape (docs/issuer.md, "User events");
    a change to None removes that member."""
    event = {
        "specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": "authgate-issuer",
        "type": "user.deleted", "time": "2025-01-01T00:00:00Z", "subject": subject,
        "datacontenttype": "application/json", "data": {"user_id": subject, "by": "admin"},
    }  # fmt: skip
    event.update(changes)
    return {name: value for name, value in event.items() if value is not None}


def send(amqp_url: str, names: Names, event: dict[str, Any]) -> None:
    publish(amqp_url, names.exchange, "user.deleted", json.dumps(event).encode(),
            message_id=event["id"])  # fmt: skip


def create(http: httpx.Client, owner: str) -> str:
    response = http.post("/members", json={"display_name": "M"}, headers=identity(owner))
    assert response.status_code == 201, response.text
    member_id: str = response.json()["id"]
    return member_id


def owned(http: httpx.Client, owner: str) -> list[str]:
    members = http.get("/members", headers=identity(owner)).json()["members"]
    return [m["id"] for m in members]


def counted(service: MembersProcess, counter: str, at_least: int, timeout: float = 15) -> None:
    wait_until(
        lambda: service.consumer()[counter] >= at_least, timeout,
        lambda: f"{counter} never reached {at_least}: {service.consumer()}\n{service.child.log_tail()}",
    )  # fmt: skip


def test_user_deleted_removes_that_users_members(
    http: httpx.Client, members: MembersProcess, amqp_url: str, names: Names
) -> None:
    alice, bob = user("alice"), user("bob")
    for _ in range(3):
        create(http, alice)
    kept = create(http, bob)
    send(amqp_url, names, user_deleted(alice))
    wait_until(lambda: owned(http, alice) == [], 15, "alice's members were not deleted")
    assert owned(http, bob) == [kept]
    assert queue_depth(amqp_url, names.queue) == 0


def test_an_event_delivered_twice_is_processed_once(
    http: httpx.Client, members: MembersProcess, amqp_url: str, names: Names
) -> None:
    alice = user("alice")
    create(http, alice)
    event = user_deleted(alice)
    send(amqp_url, names, event)
    wait_until(lambda: owned(http, alice) == [], 15, "the first delivery did nothing")
    # A member made after the event: the same event again must not touch it.
    later = create(http, alice)
    duplicates = members.consumer()["duplicates"]
    send(amqp_url, names, event)
    counted(members, "duplicates", duplicates + 1)
    assert owned(http, alice) == [later]
    assert queue_depth(amqp_url, names.queue) == 0


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'["user.deleted"]', "not an object"),
        (json.dumps(user_deleted("x", subject=None)).encode(), "no subject"),
        (json.dumps(user_deleted("x", subject="")).encode(), "empty subject"),
        (json.dumps(user_deleted("x", id=None)).encode(), "no id"),
        (json.dumps(user_deleted("x", type="user.created")).encode(), "another type"),
    ],
)
def test_a_poison_message_is_dead_lettered_and_the_rest_go_on(
    http: httpx.Client, members: MembersProcess, amqp_url: str, names: Names,
    body: bytes, why: str,
) -> None:  # fmt: skip
    before = queue_depth(amqp_url, names.dlq)
    publish(amqp_url, names.exchange, "user.deleted", body, message_id=f"poison-{why}")
    wait_until(lambda: queue_depth(amqp_url, names.dlq) == before + 1, 15,
               lambda: f"{why}: not dead-lettered\n{members.child.log_tail()}")  # fmt: skip
    alice = user("alice")
    create(http, alice)
    send(amqp_url, names, user_deleted(alice))
    wait_until(lambda: owned(http, alice) == [], 15, f"{why}: a good event after it was stuck")
    assert queue_depth(amqp_url, names.queue) == 0


@pytest.fixture
def own_names(amqp_url: str) -> Iterator[Names]:
    names = Names.unique()
    yield names
    names.clean_up(amqp_url)


def test_events_sent_while_the_service_is_down_are_processed_after(
    amqp_url: str, own_names: Names, tmp_path: Path
) -> None:
    db, alice = tmp_path / "members.db", user("alice")
    first = MembersProcess(db, amqp_url, own_names, tmp_path / "first.log")
    try:
        first.wait_consuming()  # the queue is declared and bound from now on
        with httpx.Client(base_url=first.url, timeout=10) as http:
            create(http, alice)
    finally:
        first.stop()
    send(amqp_url, own_names, user_deleted(alice))
    assert queue_depth(amqp_url, own_names.queue) == 1
    second = MembersProcess(db, amqp_url, own_names, tmp_path / "second.log")
    try:
        with httpx.Client(base_url=second.url, timeout=10) as http:
            wait_until(lambda: owned(http, alice) == [], 30, "the waiting event was not processed")
    finally:
        second.stop()
    assert queue_depth(amqp_url, own_names.queue) == 0


def test_reconnects_when_rabbitmq_goes_away(
    amqp_url: str, own_names: Names, tmp_path: Path
) -> None:
    proxy = TcpProxy(*amqp_address(amqp_url))
    service = MembersProcess(tmp_path / "members.db", via_proxy(amqp_url, proxy), own_names,
                             tmp_path / "members.log")  # fmt: skip
    alice = user("alice")
    try:
        service.wait_consuming()
        with httpx.Client(base_url=service.url, timeout=10) as http:
            create(http, alice)
            proxy.cut()
            wait_until(lambda: service.consumer()["state"] == "reconnecting", 15,
                       lambda: f"loss not noticed: {service.consumer()}")  # fmt: skip
            # The HTTP side does not depend on RabbitMQ.
            assert http.get("/healthz").json()["status"] == "ok"
            send(amqp_url, own_names, user_deleted(alice))  # straight to RabbitMQ
            assert owned(http, alice) != []
            proxy.restore()
            service.wait_consuming()
            wait_until(lambda: owned(http, alice) == [], 30, "the event sent meanwhile was lost")
    finally:
        service.stop()
        proxy.close()


def test_moves_to_the_next_node_when_its_node_dies(
    rabbitmq_cluster: RabbitMQCluster, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    """`MEMBERS_AMQP_URL` naming each node of a cluster: its node killed, the service
    consumes from the next one, and an event sent meanwhile is not lost."""
    rabbitmq_cluster.heal()
    n0, n1, n2 = rabbitmq_cluster.urls
    names = Names.unique()
    # Node 1 first: the node it connects to, and the one killed.
    service = MembersProcess(tmp_path / "members.db", f"{n1},{n2},{n0}", names,
                             tmp_path / "members.log")  # fmt: skip
    alice = user("alice")
    try:
        service.wait_consuming()
        with httpx.Client(base_url=service.url, timeout=10) as http:
            create(http, alice)
            killed = time.monotonic()
            rabbitmq_cluster.kill(1)
            send(n2, names, user_deleted(alice))  # to a node that stays up
            wait_until(lambda: owned(http, alice) == [], 30,
                       lambda: f"the event was lost: {service.consumer()}\n{service.child.log_tail()}")  # fmt: skip
            handled = time.monotonic() - killed
            assert "lost; reconnecting" in service.child.log_path.read_text()
    finally:
        service.stop()
        names.clean_up(n2)
        rabbitmq_cluster.revive()
    figure(pytestconfig, f"member example, its node killed: an event sent to another node "
                         f"handled {handled:.2f} s after the kill")  # fmt: skip
