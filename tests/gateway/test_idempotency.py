"""plugins/idempotency.py against real Redis, in both of its hosts.

Every behaviour runs twice: through `authgate-gateway serve`, and in kong-pdk's real
plugin server driven over its socket as Kong drives it (`hosts.py`). The last tests are
about the plugin server's own contract with Kong and run there only.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from stack.processes import free_port

from ..gateway_harness import CountingUpstream
from ..harness import TcpProxy
from ..kong_rpc import PLUGIN, MiniKong, PluginServer, Request
from ..polling import poll
from .hosts import Answer, Host, PluginServerHost, ServeHost


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream(delay=0.3)
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginServer]:
    prefix = tmp_path_factory.mktemp("kong-prefix")
    process = PluginServer(prefix, prefix / "pluginserver.log")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=["serve", "pluginserver"])
def host(
    request: pytest.FixtureRequest,
    counting: CountingUpstream,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Host]:
    plugin = {"redis_url": redis_url, "lock_seconds": 30}
    if request.param == "serve":
        serve = ServeHost(counting.url, plugin, tmp_path_factory)
        yield serve
        serve.stop()
    else:
        yield PluginServerHost(request.getfixturevalue("server"), counting.url, plugin)


def key() -> str:
    return "k-" + secrets.token_hex(8)


def post(
    host: Host, path: str, body: bytes, idem: str | None, user: str = "alice", **h: str
) -> Answer:
    headers = {"Content-Type": "application/json", "X-Auth-User": user, **h}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return host.send("POST", path, body, headers)


def test_fifty_concurrent_identical_posts_run_once(host: Host, counting: CountingUpstream) -> None:
    path, idem, body = f"/orders/{key()}", key(), b'{"amount": 5}'
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: post(host, path, body, idem), range(50)))
    assert counting.count(path) == 1
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
    again = post(host, path, body, idem)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first[0].content
    assert counting.count(path) == 1


def test_same_key_other_request_is_422(host: Host, counting: CountingUpstream) -> None:
    path, idem = f"/pay/{key()}", key()
    assert post(host, path, b'{"amount": 1}', idem).status_code == 201
    changed = post(host, path, b'{"amount": 2}', idem)
    other_path = post(host, path + "x", b'{"amount": 1}', idem)
    other_query = post(host, path + "?dry=1", b'{"amount": 1}', idem)
    other_type = post(host, path, b'{"amount": 1}', idem, **{"Content-Type": "text/plain"})
    for answer in (changed, other_path, other_query, other_type):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("key-reused")
    assert counting.count(path) == 1


def test_query_order_does_not_matter(host: Host, counting: CountingUpstream) -> None:
    path, idem = f"/q/{key()}", key()
    assert post(host, path + "?a=1&b=2", b"{}", idem).status_code == 201
    replay = post(host, path + "?b=2&a=1", b"{}", idem)
    assert replay.headers.get("idempotent-replayed") == "true"


def test_other_user_with_same_key_is_a_new_request(host: Host, counting: CountingUpstream) -> None:
    path, idem, body = f"/notes/{key()}", key(), b'{"text": "hi"}'
    alice = post(host, path, body, idem, user="alice")
    bob = post(host, path, body, idem, user="bob")
    bob_again = post(host, path, body, idem, user="bob")
    assert alice.json()["user"] == "alice"
    assert bob.status_code == 201 and "idempotent-replayed" not in bob.headers
    assert bob.json()["user"] == "bob"  # bob never sees alice's response
    assert bob_again.json() == bob.json() and bob_again.headers["idempotent-replayed"] == "true"
    assert counting.count(path) == 2


def test_key_rules(host: Host, counting: CountingUpstream) -> None:
    path = f"/k/{key()}"
    for bad in (b"x" * 256, b"tab\there", "é-accent".encode(), b'""'):
        answer = host.send("POST", path, b"{}", {b"Idempotency-Key": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["type"].endswith("key-malformed")
    # The draft's structured-field form and the bare form name one key.
    idem = key()
    assert post(host, path, b"{}", f'"{idem}"').status_code == 201
    legacy = post(host, path, b"{}", None, **{"X-Idempotency-Key": idem})
    assert legacy.headers.get("idempotent-replayed") == "true"
    # Without a key (not required here) and on GET, the plugin stays out of the way.
    assert post(host, path, b"{}", None).status_code == 201
    assert host.send("GET", path, b"", {"Idempotency-Key": idem}).status_code == 201
    assert counting.count(path) == 3


def test_upstream_5xx_is_stored_by_default(host: Host, counting: CountingUpstream) -> None:
    path, idem = f"/status/500/{key()}", key()
    assert post(host, path, b"{}", idem).status_code == 500
    replay = post(host, path, b"{}", idem)
    assert replay.status_code == 500 and replay.headers["idempotent-replayed"] == "true"
    assert counting.count(path) == 1


def test_keys_are_stored_hashed(host: Host, redis_url: str) -> None:
    idem = key()
    post(host, f"/h/{key()}", b"{}", idem, user="carol-secret-id")
    client = redis.Redis.from_url(redis_url)
    try:
        for name in client.scan_iter("authgate:idem:*", count=1000):
            assert idem.encode() not in name and b"carol" not in name
            assert b"carol" not in b"".join(client.hgetall(name).keys())
    finally:
        client.close()


def test_required_and_5xx_release(host: Host, counting: CountingUpstream, redis_url: str) -> None:
    plugin = {"redis_url": redis_url, "required": True, "on_5xx": "release"}
    with host.variant(plugin) as strict:
        missing = post(strict, "/r", b"{}", None)
        assert missing.status_code == 400 and missing.json()["type"].endswith("key-missing")
        path, idem = f"/status/503/{key()}", key()
        assert post(strict, path, b"{}", idem).status_code == 503
        assert post(strict, path, b"{}", idem).status_code == 503
    assert counting.count(path) == 2  # released: the retry ran


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_unreachable(
    fail_open: bool, host: Host, counting: CountingUpstream, redis_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    plugin = {"redis_url": f"redis://127.0.0.1:{proxy.port}/0", "fail_open": fail_open}
    try:
        with host.variant(plugin) as gw:
            path = f"/down/{key()}"
            assert post(gw, path, b"{}", key()).status_code == 201  # Redis up
            proxy.cut()
            answer = post(gw, path, b"{}", key())
            if fail_open:
                assert answer.status_code == 201
                assert counting.count(path) == 2
            else:
                assert answer.status_code == 503
                assert answer.json()["type"].endswith("unavailable")
                assert answer.headers["retry-after"] == "1"
                assert counting.count(path) == 1
            proxy.restore()
            assert post(gw, path, b"{}", key()).status_code == 201
    finally:
        proxy.close()


def test_redis_closed_port_is_503(host: Host, counting: CountingUpstream) -> None:
    with host.variant({"redis_url": f"redis://127.0.0.1:{free_port()}/0"}) as gw:
        path = f"/closed/{key()}"
        answer = post(gw, path, b"{}", key())
        assert answer.status_code == 503 and answer.json()["type"].endswith("unavailable")
    assert counting.count(path) == 0


def test_lock_released_after_upstream_connection_failure(
    host: Host, counting: CountingUpstream, redis_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", counting.port)
    try:
        path, idem = f"/flaky/{key()}", key()
        with host.variant(
            {"redis_url": redis_url}, f"http://127.0.0.1:{proxy.port}", retries=0
        ) as gw:
            proxy.cut()
            failed = post(gw, path, b"{}", idem)
            assert failed.status_code == 502
            proxy.restore()
            # The key is freed after the 502 went out (Kong's log phase): poll, never sleep.
            retry = poll(lambda: post(gw, path, b"{}", idem), lambda r: r.status_code != 409, 10,
                         "the lock was never released", interval=0.05)  # fmt: skip
        assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
        assert counting.count(path) == 1
    finally:
        proxy.close()


# The plugin server's own contract with Kong, so its host only: `serve` imports the module
# itself (gateway/plugins.py) and has neither a query command nor StartInstance.


def test_query_command_describes_the_plugin() -> None:
    # Kong's pluginserver_<name>_query_cmd: what it learns the plugin's phases and schema from.
    out = subprocess.run(
        [sys.executable, str(PLUGIN), "--dump"], capture_output=True, check=True, timeout=30
    )
    (info,) = json.loads(out.stdout)
    assert info["Name"] == "idempotency" and info["Priority"] == 900
    assert set(info["Phases"]) == {"access", "response", "log"}
    fields = info["Schema"]["fields"][0]["config"]["fields"]
    assert {"redis_url", "fail_open", "lock_seconds"} <= {next(iter(f)) for f in fields}


def test_body_kong_could_not_buffer_is_413(
    server: PluginServer, counting: CountingUpstream
) -> None:
    # serve answers an oversized body itself before any plugin runs (test_bodies.py).
    kong = MiniKong(server, {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}, counting.url)
    path = f"/big/{key()}"
    headers = {"Idempotency-Key": key(), "X-Auth-User": "alice"}
    status, got, body = kong.handle(Request("POST", path, headers, None))
    assert status == 413 and json.loads(body)["type"].endswith("body-too-large")
    assert got["Content-Type"] == "application/problem+json"
    assert counting.count(path) == 0


def test_a_bad_instance_config_fails_at_start(server: PluginServer) -> None:
    # A config Kong sends is the plugin's (test_required_and_5xx_release proves a good one
    # takes effect, on both hosts); a bad one fails StartInstance, loudly.
    with pytest.raises(RuntimeError, match="redis"):
        server.call(
            "plugin.StartInstance",
            {"Name": "idempotency", "Config": json.dumps({"redis_url": "nope://"})},
        )
