"""plugins/idempotency.py on Redis Sentinel and Redis Cluster, configured with Kong
Enterprise's Redis field names (`config.redis.sentinel_nodes`, `cluster_nodes`, …), in
both of its hosts; and those fields checked as Kong would check them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from gateway import schema
from gateway.plugins import find
from stack.redis_ha import MASTER_NAME, LocalCluster, LocalSentinel

from ..gateway_harness import CountingUpstream
from ..kong_rpc import PluginServer
from .hosts import Host, PluginServerHost, ServeHost


def _sentinel_fields(setup: LocalSentinel) -> dict[str, Any]:
    nodes = [{"host": "127.0.0.1", "port": port} for port in setup.sentinel_ports]
    return {"sentinel_master": MASTER_NAME, "sentinel_role": "master",
            "sentinel_nodes": nodes, "database": 2}  # fmt: skip


def _cluster_fields(setup: LocalCluster) -> dict[str, Any]:
    nodes = [{"ip": "127.0.0.1", "port": port} for port in setup.ports[:2]]
    return {"cluster_nodes": nodes, "cluster_max_redirections": 5}


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream(delay=0.3)
    yield upstream
    upstream.close()


@pytest.fixture(
    scope="module",
    params=[("sentinel", "serve"), ("cluster", "serve"), ("cluster", "pluginserver")],
    ids=lambda p: "-".join(p),
)
def host(
    request: pytest.FixtureRequest,
    counting: CountingUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Host]:
    topology, kind = request.param
    if topology == "sentinel":
        fields = _sentinel_fields(request.getfixturevalue("redis_sentinel"))
    else:
        fields = _cluster_fields(request.getfixturevalue("redis_cluster"))
    # redis_url points nowhere: the Kong fields must be what the plugin uses.
    plugin = {"redis_url": "redis://127.0.0.1:1/0", "redis": fields, "lock_seconds": 30}
    if kind == "serve":
        serve = ServeHost(counting.url, plugin, tmp_path_factory)
        yield serve
        serve.stop()
    else:
        prefix = tmp_path_factory.mktemp("kong-prefix")
        server = PluginServer(prefix, prefix / "pluginserver.log")
        try:
            yield PluginServerHost(server, counting.url, plugin)
        finally:
            server.stop()


def test_concurrent_identical_posts_run_once_and_replay(
    host: Host, counting: CountingUpstream
) -> None:
    path, idem = f"/orders/{secrets.token_hex(6)}", "k-" + secrets.token_hex(8)
    headers = {"Content-Type": "application/json", "X-Auth-User": "alice", "Idempotency-Key": idem}

    def post(_: int) -> int:
        return host.send("POST", path, b'{"amount": 5}', headers).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(post, range(20)))
    assert counting.count(path) == 1
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1
    replay = host.send("POST", path, b'{"amount": 5}', headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert counting.count(path) == 1


def _check(redis: dict[str, Any]) -> list[tuple[str, str]]:
    plugin = find("idempotency")
    return schema.check_record(plugin.schema, {"redis": redis}, "config")[1]


def test_kong_enterprise_field_shapes_are_checked() -> None:
    good = {"sentinel_master": "m", "sentinel_role": "master",
            "sentinel_nodes": [{"host": "s1", "port": 26379}, {"host": "s2"}]}  # fmt: skip
    assert _check(good) == []
    assert _check({"cluster_nodes": [{"ip": "n1", "port": 7000}]}) == []
    # A replica cannot take writes: Kong's `slave`/`any` roles are refused here.
    assert ("config.redis.sentinel_role", "expected one of: master") in _check(
        {**good, "sentinel_role": "slave"}
    )
    # Kong names a cluster node's address `ip` and a sentinel's `host`.
    assert ("config.redis.cluster_nodes[0].host", "unknown field") in _check(
        {"cluster_nodes": [{"host": "n1"}]}
    )
    assert ("config.redis.cluster_max_redirections", "value should be between 1 and 100") in (
        _check({"cluster_nodes": [{"ip": "n1"}], "cluster_max_redirections": 0})
    )


def test_a_sentinel_master_without_nodes_fails_at_start() -> None:
    plugin = find("idempotency")
    config = schema.check_record(plugin.schema, {"redis": {"sentinel_master": "m"}}, "c")[0]
    with pytest.raises(ValueError, match=r"sentinel_master and redis\.sentinel_nodes go together"):
        plugin.cls(config)


def test_wait_replicas_takes_a_key_only_once_replicas_hold_it(
    redis_sentinel: LocalSentinel,
    counting: CountingUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The setup has one replica: asking for two can never be met, so the key is released
    and the request refused like an unreachable Redis (nothing runs); asking for one runs
    it, with the same key, which proves the refused attempt left no lock behind."""
    path, idem = f"/orders/{secrets.token_hex(6)}", "k-" + secrets.token_hex(8)
    headers = {"Content-Type": "application/json", "X-Auth-User": "alice", "Idempotency-Key": idem}
    base = {"redis_url": redis_sentinel.url, "lock_seconds": 30, "wait_timeout_ms": 200}
    unmet = ServeHost(counting.url, {**base, "wait_replicas": 2}, tmp_path_factory)
    try:
        refused = unmet.send("POST", path, b"{}", headers)
    finally:
        unmet.stop()
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"].endswith("/unavailable")
    assert counting.count(path) == 0
    met = ServeHost(counting.url, {**base, "wait_replicas": 1}, tmp_path_factory)
    try:
        assert met.send("POST", path, b"{}", headers).status_code == 201
        replay = met.send("POST", path, b"{}", headers)
    finally:
        met.stop()
    assert replay.headers["idempotent-replayed"] == "true"
    assert counting.count(path) == 1


def test_wait_replicas_is_refused_on_a_cluster() -> None:
    plugin = find("idempotency")
    raw = {"redis": {"cluster_nodes": [{"ip": "n1", "port": 7000}]}, "wait_replicas": 1}
    config = schema.check_record(plugin.schema, raw, "c")[0]
    with pytest.raises(ValueError, match="not supported on a Redis Cluster"):
        plugin.cls(config)


def test_a_stored_body_is_replayed_byte_for_byte(redis_url: str) -> None:
    """The plugin's client keeps replies as bytes: a body that is not UTF-8 comes back
    exactly as stored."""
    plugin = find("idempotency")
    config = schema.check_record(plugin.schema, {"redis_url": redis_url}, "c")[0]
    instance = plugin.cls(config)
    record, body = "authgate:idem:test:" + secrets.token_hex(8), bytes(range(256))
    assert instance.acquire(keys=[record], args=["fp", "owner", 5000])[0] == b"acquired"
    assert instance.complete(keys=[record], args=["owner", 201, "{}", body, 1, 60]) == 1
    reply = instance.acquire(keys=[record], args=["fp", "other", 5000])
    assert reply[0] == b"done" and reply[3] == body
