"""Highly available Redis on one machine: a Sentinel setup and a Cluster, made of private
`redis-server` processes on loopback ports with their files in a directory of their own.

The tests start each once per session (tests/conftest.py) to prove the services on both
topologies and through their failovers, and `--redis-topology` runs the whole suite on
either; nothing here is started on a default port.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from .processes import Child, StartFailed, free_ports
from .services import _binary, redis_problem

MASTER_NAME = "authgate"
#: Sentinel's failure detection: a master silent this long is down. Short, for tests;
#: production keeps Redis's default of 30 s or its own choice.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _server(workdir: Path, port: int, *extra: str) -> Child:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(workdir), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", "",
            # A replica syncs at once (Redis 7 waits 5 s for others to share a sync).
            "--repl-diskless-sync-delay", "0", *extra]  # fmt: skip
    return Child(argv, log=workdir / "redis.log").start()


def _crash(child: Child) -> None:
    """SIGKILL: the node dies as in a crash, with no goodbye to its peers."""
    os.killpg(child.pid, signal.SIGKILL)
    if child.process is not None:
        child.process.wait()


def _linked(port: int) -> bool:
    """The replica at `port` has finished its first sync and follows its master."""
    try:
        with redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as node:
            return bool(node.info("replication").get("master_link_status") == "up")
    except redis.RedisError:
        return False


def _ping(port: int) -> bool:
    return redis_problem(f"redis://127.0.0.1:{port}/0", 0.5) is None


class LocalSentinel:
    """One master, one replica, three sentinels watching them as `MASTER_NAME`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        ports = free_ports(5)
        self.data_ports = ports[:2]
        self.sentinel_ports = ports[2:]
        self.servers: dict[int, Child] = {}
        self.sentinels: list[Child] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def start(self) -> None:
        master, replica = self.data_ports
        self.servers[master] = _server(self.workdir / f"redis-{master}", master)
        self.servers[replica] = _server(
            self.workdir / f"redis-{replica}", replica, "--replicaof", "127.0.0.1", str(master)
        )
        for port, child in self.servers.items():
            child.wait_until(lambda p=port: _ping(p), "redis-server", 20)  # type: ignore[misc]
        self.servers[replica].wait_until(lambda: _linked(replica), "redis replica", 20)
        for port in self.sentinel_ports:
            directory = self.workdir / f"sentinel-{port}"
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"  # sentinel rewrites its config: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            )
            argv = [_binary("redis-server"), str(conf), "--sentinel"]
            self.sentinels.append(Child(argv, log=directory / "sentinel.log").start())
        for port, child in zip(self.sentinel_ports, self.sentinels, strict=True):
            child.wait_until(lambda p=port: self._sees_replica(p), "redis sentinel", 30)  # type: ignore[misc]

    def _sees_replica(self, port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as sentinel:
                replicas = sentinel.sentinel_slaves(MASTER_NAME)
                others = sentinel.sentinel_sentinels(MASTER_NAME)
        except redis.RedisError:
            return False
        return bool(replicas) and len(others) == len(self.sentinel_ports) - 1

    def master_port(self) -> int:
        """The master's port as the sentinels name it now."""
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=1) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def kill(self, port: int) -> None:
        _crash(self.servers[port])

    def revive(self, port: int) -> None:
        """Start a killed server again; the sentinels make it a replica of the new master."""
        self.servers[port].start().wait_until(lambda: _ping(port), "redis-server", 20)

    def stop(self) -> None:
        for child in [*self.sentinels, *self.servers.values()]:
            child.stop(grace=5)


def _cluster_ports(count: int) -> list[int]:
    """`count` ports each free together with its cluster bus port (port + 10000), so at
    most 55535: the kernel's own choice of free port is usually above that."""
    chosen: list[int] = []
    candidates = random.Random().sample(range(20000, 55535), 400)  # noqa: S311 - not a secret
    for port in candidates:
        if len(chosen) == count:
            break
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        chosen.append(port)
    if len(chosen) < count:
        raise StartFailed("no free ports for a Redis Cluster", "")
    return chosen


def _port(address: str) -> int:
    """The port of a CLUSTER NODES address, `host:port@busport`."""
    return int(address.split("@")[0].rsplit(":", 1)[1])


def _covers(part: str, slot: int) -> bool:
    """Does a CLUSTER NODES slot field (`5`, `0-5460`; `[…]` while migrating) hold `slot`?"""
    if part.startswith("["):
        return False
    low, _, high = part.partition("-")
    return int(low) <= slot <= int(high or low)


class LocalCluster:
    """`masters` masters with `replicas` replicas each, slots spread by `redis-cli --cluster`."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 1) -> None:
        self.workdir = workdir
        self.ports = _cluster_ports(masters * (1 + replicas))
        self.masters = masters
        self.replicas = replicas
        self.servers: dict[int, Child] = {}
        self.started_in = 0.0

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports[:2])
        return f"redis+cluster://{hosts}"

    def start(self) -> None:
        began = time.monotonic()
        for port in self.ports:
            directory = self.workdir / f"node-{port}"
            self.servers[port] = _server(
                directory, port, "--cluster-enabled", "yes",
                "--cluster-config-file", str(directory / "nodes.conf"),
                "--cluster-node-timeout", str(DOWN_AFTER_MS),
            )  # fmt: skip
        for port, child in self.servers.items():
            child.wait_until(lambda p=port: _ping(p), "redis-server (cluster)", 20)  # type: ignore[misc]
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        create = [_binary("redis-cli"), "--cluster", "create", *nodes,
                  "--cluster-replicas", str(self.replicas), "--cluster-yes"]  # fmt: skip
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise StartFailed("redis-cli --cluster create failed", done.stdout + done.stderr)
        first = next(iter(self.servers.values()))
        first.wait_until(self._ready, "redis cluster", 30)
        self.started_in = time.monotonic() - began

    def _ready(self) -> bool:
        """Every node says the cluster is ok and knows every other node, and every
        replica has finished its first sync (a failover test kills a master only once
        its replica holds the data)."""
        replicas = 0
        for port in self.ports:
            try:
                with redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as node:
                    info = node.execute_command("CLUSTER", "INFO")
                    known = node.execute_command("CLUSTER", "NODES")
                    replication = node.info("replication")
            except redis.RedisError:
                return False
            if "cluster_state:ok" not in info or len(str(known).splitlines()) != len(self.ports):
                return False
            if replication.get("role") == "slave":
                if replication.get("master_link_status") != "up":
                    return False
                replicas += 1
        return replicas == len(self.ports) - self.masters

    def master_of(self, key: str) -> int:
        """The port of the master serving `key`'s slot now."""
        return self.role_map(key)[0]

    def role_map(self, key: str) -> tuple[int, list[int]]:
        """(master port, replica ports) of `key`'s slot, as a live node sees it (CLUSTER
        NODES: CLUSTER SLOTS leaves out a replica until gossip tells its offset)."""
        for port in self.ports:
            if not self.servers[port].alive():
                continue
            try:
                with redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as node:
                    slot = int(node.execute_command("CLUSTER", "KEYSLOT", key))
                    lines = str(node.execute_command("CLUSTER", "NODES")).splitlines()
            except redis.RedisError:
                continue
            nodes = [line.split() for line in lines]
            for fields in nodes:
                flags = fields[2].split(",")
                if "master" not in flags or "fail" in flags:
                    continue
                if any(_covers(part, slot) for part in fields[8:]):
                    replicas = [
                        _port(f[1]) for f in nodes if f[3] == fields[0] and "fail" not in f[2]
                    ]
                    return _port(fields[1]), replicas
        raise RuntimeError("no cluster node answers")

    def kill(self, port: int) -> None:
        _crash(self.servers[port])

    def revive(self, port: int) -> None:
        """Start a killed node again; it rejoins (nodes.conf) as a replica of its successor."""
        self.servers[port].start().wait_until(lambda: _ping(port), "redis-server", 20)
        self.servers[port].wait_until(self._ready, "redis cluster", 30)

    def stop(self) -> None:
        for child in self.servers.values():
            child.stop(grace=5)
