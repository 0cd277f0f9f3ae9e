"""The connection layer on real Sentinel and Cluster setups, and the peers' known traps:
a Sentinel URL that loses the database number, a cluster URL that lands on a replica
(READONLY), a cluster password that reaches only the seed node (NOAUTH)."""

from __future__ import annotations

import secrets

import redis

from authgate import redis_client
from stack.redis_ha import LocalCluster, LocalSentinel


def test_sentinel_url_writes_to_the_master_in_the_database_it_names(
    redis_sentinel: LocalSentinel,
) -> None:
    key, value = "authgate:test:db:" + secrets.token_hex(4), secrets.token_hex(4)
    url = redis_sentinel.url.rsplit("/", 1)[0] + "/5"
    client = redis_client.connect_blocking(url, timeout=2)
    try:
        client.set(key, value, ex=60)
    finally:
        client.close()
    master = redis_sentinel.master_port()
    with redis.Redis(port=master, db=5, decode_responses=True) as db5:
        assert db5.get(key) == value
    with redis.Redis(port=master, db=0, decode_responses=True) as db0:
        assert db0.get(key) is None


def test_cluster_seeded_with_replicas_only_still_writes_to_masters(
    redis_cluster: LocalCluster,
) -> None:
    _, replicas = redis_cluster.role_map("any")
    seeds = [port for port in redis_cluster.ports if port not in _masters(redis_cluster)]
    assert seeds and set(replicas) <= set(seeds)
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in seeds)
    client = redis_client.connect_blocking(url, timeout=2)
    keys = [f"authgate:test:ro:{i}:{secrets.token_hex(2)}" for i in range(30)]
    try:
        for key in keys:  # spread over every shard; a replica would answer READONLY/MOVED
            client.set(key, "1", ex=60)
        assert all(client.get(key) == "1" for key in keys)
    finally:
        client.close()


def test_cluster_credentials_reach_every_node(redis_cluster: LocalCluster) -> None:
    user, password = "authgate-" + secrets.token_hex(3), secrets.token_hex(12)
    for port in redis_cluster.ports:
        with redis.Redis(port=port) as node:
            node.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    client = redis_client.connect_blocking(
        f"redis+cluster://{user}:{password}@127.0.0.1:{redis_cluster.ports[0]}", timeout=2
    )
    try:
        for i in range(30):
            client.set(f"authgate:test:auth:{i}:{secrets.token_hex(2)}", "1", ex=60)
        # Every master holds a connection authenticated as the user, not the default one.
        for port in _masters(redis_cluster):
            with redis.Redis(port=port, decode_responses=True) as node:
                users = {c["user"] for c in node.client_list()}
            assert user in users, (port, users)
    finally:
        client.close()
        for port in redis_cluster.ports:
            with redis.Redis(port=port) as node:
                node.execute_command("ACL", "DELUSER", user)


def _masters(cluster: LocalCluster) -> set[int]:
    with redis.Redis(port=cluster.ports[0], decode_responses=True) as node:
        return {int(entry[2][1]) for entry in node.execute_command("CLUSTER", "SLOTS")}
