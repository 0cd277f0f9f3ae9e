"""The idempotency plugin through `authgate-gateway serve`, against real Redis."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from stack.processes import free_port

from ..gateway_harness import CountingUpstream, GatewayProcess, kong_yml
from ..harness import TcpProxy


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream(delay=0.3)
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def gateway(
    counting: CountingUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    config = kong_yml(counting.url, {"redis_url": redis_url, "lock_seconds": 30})
    process = GatewayProcess(config, tmp_path_factory.mktemp("gw"), env())
    yield process
    process.stop()


def key() -> str:
    return "k-" + secrets.token_hex(8)


def post(
    client: httpx.Client, path: str, body: bytes, idem: str | None, user: str = "alice", **h: str
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Auth-User": user, **h}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return client.post(path, content=body, headers=headers)


def test_fifty_concurrent_identical_posts_run_once(
    gateway: GatewayProcess, counting: CountingUpstream
) -> None:
    path, idem, body = f"/api/orders/{key()}", key(), b'{"amount": 5}'

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            headers = {"Idempotency-Key": idem, "X-Auth-User": "alice"}
            headers["Content-Type"] = "application/json"
            calls = [client.post(path, content=body, headers=headers) for _ in range(50)]
            return await asyncio.gather(*calls)

    answers = asyncio.run(burst())
    assert counting.count("/orders/" + path.rsplit("/", 1)[1]) == 1
    first = [r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replays = [r for r in answers if r.headers.get("idempotent-replayed") == "true"]
    busy = [r for r in answers if r.status_code == 409]
    assert len(first) == 1
    assert len(first) + len(replays) + len(busy) == 50
    for replay in replays:
        assert replay.status_code == 201
        assert replay.content == first[0].content
        assert replay.headers["location"] == first[0].headers["location"]
        assert "x-not-replayed" not in replay.headers  # only the allow-list is kept
    for refusal in busy:
        assert int(refusal.headers["retry-after"]) >= 1
        assert refusal.headers["content-type"] == "application/problem+json"
        assert refusal.json()["status"] == 409

    # Once completed, every retry is a replay and the upstream never sees it.
    with gateway.client() as client:
        again = post(client, path, body, idem)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first[0].content
    assert counting.count("/orders/" + path.rsplit("/", 1)[1]) == 1


def test_same_key_other_request_is_422(gateway: GatewayProcess, counting: CountingUpstream) -> None:
    path, idem = f"/api/pay/{key()}", key()
    with gateway.client() as client:
        assert post(client, path, b'{"amount": 1}', idem).status_code == 201
        changed = post(client, path, b'{"amount": 2}', idem)
        other_path = post(client, path + "x", b'{"amount": 1}', idem)
        other_query = post(client, path + "?dry=1", b'{"amount": 1}', idem)
        other_type = post(client, path, b'{"amount": 1}', idem, **{"Content-Type": "text/plain"})
    for answer in (changed, other_path, other_query, other_type):
        assert answer.status_code == 422, answer.text
        assert answer.json()["type"].endswith("key-reused")
    assert counting.count("/pay/" + path.rsplit("/", 1)[1]) == 1


def test_query_order_does_not_matter(gateway: GatewayProcess, counting: CountingUpstream) -> None:
    path, idem = f"/api/q/{key()}", key()
    with gateway.client() as client:
        assert post(client, path + "?a=1&b=2", b"{}", idem).status_code == 201
        replay = post(client, path + "?b=2&a=1", b"{}", idem)
    assert replay.headers.get("idempotent-replayed") == "true"


def test_other_user_with_same_key_is_a_new_request(
    gateway: GatewayProcess, counting: CountingUpstream
) -> None:
    path, idem, body = f"/api/notes/{key()}", key(), b'{"text": "hi"}'
    with gateway.client() as client:
        alice = post(client, path, body, idem, user="alice")
        bob = post(client, path, body, idem, user="bob")
        bob_again = post(client, path, body, idem, user="bob")
    assert alice.json()["user"] == "alice"
    assert bob.status_code == 201 and "idempotent-replayed" not in bob.headers
    assert bob.json()["user"] == "bob"  # bob never sees alice's response
    assert bob_again.json() == bob.json() and bob_again.headers["idempotent-replayed"] == "true"
    assert counting.count("/notes/" + path.rsplit("/", 1)[1]) == 2


def test_key_rules(gateway: GatewayProcess, counting: CountingUpstream) -> None:
    path = f"/api/k/{key()}"
    with gateway.client() as client:
        for bad in (b"x" * 256, b"tab\there", "é-accent".encode(), b'""'):
            answer = client.post(path, content=b"{}", headers={b"Idempotency-Key": bad})
            assert answer.status_code == 400, bad
            assert answer.json()["type"].endswith("key-malformed")
        # The draft's structured-field form and the bare form name one key.
        idem = key()
        assert post(client, path, b"{}", f'"{idem}"').status_code == 201
        legacy = post(client, path, b"{}", None, **{"X-Idempotency-Key": idem})
        assert legacy.headers.get("idempotent-replayed") == "true"
        # Without a key (not required here) and on GET, the plugin stays out of the way.
        assert post(client, path, b"{}", None).status_code == 201
        assert client.get(path, headers={"Idempotency-Key": idem}).status_code == 201
    assert counting.count("/k/" + path.rsplit("/", 1)[1]) == 3


def test_upstream_5xx_is_stored_by_default(
    gateway: GatewayProcess, counting: CountingUpstream
) -> None:
    path, idem = f"/api/status/500/{key()}", key()
    with gateway.client() as client:
        assert post(client, path, b"{}", idem).status_code == 500
        replay = post(client, path, b"{}", idem)
    assert replay.status_code == 500 and replay.headers["idempotent-replayed"] == "true"
    assert counting.count(path.removeprefix("/api")) == 1


def test_keys_are_stored_hashed(gateway: GatewayProcess, redis_url: str) -> None:
    idem = key()
    with gateway.client() as client:
        post(client, f"/api/h/{key()}", b"{}", idem, user="carol-secret-id")
    client = redis.Redis.from_url(redis_url)
    try:
        for name in client.scan_iter("authgate:idem:*", count=1000):
            assert idem.encode() not in name and b"carol" not in name
            assert b"carol" not in b"".join(client.hgetall(name).keys())
    finally:
        client.close()


def test_required_and_5xx_release(
    counting: CountingUpstream, redis_url: str, tmp_path: Path
) -> None:
    plugin = {"redis_url": redis_url, "required": True, "on_5xx": "release"}
    gw = GatewayProcess(kong_yml(counting.url, plugin), tmp_path, env())
    try:
        with gw.client() as client:
            missing = post(client, "/api/r", b"{}", None)
            assert missing.status_code == 400 and missing.json()["type"].endswith("key-missing")
            path, idem = f"/api/status/503/{key()}", key()
            assert post(client, path, b"{}", idem).status_code == 503
            assert post(client, path, b"{}", idem).status_code == 503
        assert counting.count(path.removeprefix("/api")) == 2  # released: the retry ran
    finally:
        gw.stop()


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_unreachable(
    fail_open: bool, counting: CountingUpstream, redis_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    plugin = {"redis_url": f"redis://127.0.0.1:{proxy.port}/0", "fail_open": fail_open}
    gw = GatewayProcess(kong_yml(counting.url, plugin), tmp_path, env())
    try:
        with gw.client() as client:
            path = f"/api/down/{key()}"
            assert post(client, path, b"{}", key()).status_code == 201  # Redis up
            proxy.cut()
            answer = post(client, path, b"{}", key())
            if fail_open:
                assert answer.status_code == 201
                assert counting.count(path.removeprefix("/api")) == 2
            else:
                assert answer.status_code == 503
                assert answer.json()["type"].endswith("unavailable")
                assert answer.headers["retry-after"] == "1"
                assert counting.count(path.removeprefix("/api")) == 1
            proxy.restore()
            assert post(client, path, b"{}", key()).status_code == 201
    finally:
        gw.stop()
        proxy.close()


def test_redis_closed_port_is_503(counting: CountingUpstream, tmp_path: Path) -> None:
    plugin = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    gw = GatewayProcess(kong_yml(counting.url, plugin), tmp_path, env())
    try:
        with gw.client() as client:
            path = f"/api/closed/{key()}"
            assert post(client, path, b"{}", key()).status_code == 503
        assert counting.count(path.removeprefix("/api")) == 0
    finally:
        gw.stop()


def test_lock_released_after_upstream_connection_failure(
    counting: CountingUpstream, redis_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", counting.port)
    config = kong_yml(f"http://127.0.0.1:{proxy.port}", {"redis_url": redis_url}, retries=0)
    gw = GatewayProcess(config, tmp_path, env())
    try:
        path, idem = f"/api/flaky/{key()}", key()
        with gw.client() as client:
            proxy.cut()
            failed = post(client, path, b"{}", idem)
            assert failed.status_code == 502
            proxy.restore()
            # The key is freed after the 502 went out (Kong's log phase): poll, never sleep.
            deadline = time.monotonic() + 10
            while (retry := post(client, path, b"{}", idem)).status_code == 409:
                assert time.monotonic() < deadline, "the lock was never released"
                time.sleep(0.05)
        assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
        assert counting.count(path.removeprefix("/api")) == 1
    finally:
        gw.stop()
        proxy.close()
