"""A RabbitMQ cluster on one host, for the tests of failover (docs/scaling.md).

As RabbitMQ's clustering guide describes it for one machine: each node its own node
name, AMQP and distribution ports and data directory; the nodes share an Erlang cookie
and a port mapper (so each finds the others), and the second and later nodes join the
first with `rabbitmqctl join_cluster`. No management plugin.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .processes import Child, free_ports, listening
from .services import LocalRabbitMQ, _binary


class RabbitMQCluster:
    """`size` nodes under `workdir`, not started yet; `start()` starts and joins them."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.workdir = workdir
        ports = free_ports(1 + 2 * size)
        self.epmd_port, cookie = ports[0], secrets.token_hex(20)
        amqp_ports, dist_ports = ports[1::2], ports[2::2]
        self.nodes = [
            LocalRabbitMQ(
                workdir / f"node{i}", (amqp, self.epmd_port, dist), own_epmd=False, cookie=cookie
            )
            for i, (amqp, dist) in enumerate(zip(amqp_ports, dist_ports, strict=True))
        ]
        self.epmd: Child | None = None
        #: Seconds the last `start()` took, boot and joins together.
        self.start_seconds = 0.0

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self) -> None:
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.epmd = Child([_binary("epmd"), "-port", str(self.epmd_port), "-address",
                           "127.0.0.1"], log=self.workdir / "epmd.log")  # fmt: skip
        self.epmd.start().wait_until(lambda: listening(self.epmd_port), "epmd", 10)
        for node in self.nodes:  # booting side by side: the slow part, done once
            node.launch()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(lambda node: node.wait_ready(180), self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        self.wait_clustered()
        self.start_seconds = time.monotonic() - began

    def running_nodes(self, via: LocalRabbitMQ | None = None) -> set[str]:
        """The node names `via` (else the first running node) sees running."""
        asking = via or next(node for node in self.nodes if node.ready)
        status = asking.ctl("eval", "rabbit_nodes:all_running().")
        return {name for name in self.all_names if name in status}

    @property
    def all_names(self) -> list[str]:
        return [node.node for node in self.nodes]

    def wait_clustered(self, timeout: float = 120) -> None:
        """Until every node is up and sees all the others running."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(max(1.0, deadline - time.monotonic()))
        while self.running_nodes() != set(self.all_names):
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not whole: {self.running_nodes()}")
            time.sleep(0.2)

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def revive(self) -> None:
        """Start again every node that was killed, without waiting for it: its boot
        overlaps whatever comes next, and `heal()` waits for it."""
        for node in self.nodes:
            if node.server is None:
                node.launch()

    def heal(self) -> None:
        """Restart whatever node was killed and wait until the cluster is whole again."""
        self.revive()
        self.wait_clustered()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()
        if self.epmd is not None:
            self.epmd.stop()
