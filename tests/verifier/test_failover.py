"""The verifier on Redis Sentinel and Redis Cluster: a live session answers 204 and a
revoked one 401 on each; and through a failover, with two verifier processes under light
load, a session revoked before it never gets a 2xx, the verifier fails closed while no
master serves the session, and recovers by itself; then a revocation on the new master
reaches both under the load. The figures are printed as `[figure]` lines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from authgate.contract import SESSION_EVENTS_CHANNEL, session_key
from issuer.signing import SigningKey, new_session_id
from stack.redis_ha import LocalCluster, LocalSentinel

from ..conftest import figure
from ..harness import JwksServer, Sessions, VerifierProcess, mint, verifier_env
from ..polling import wait_until


@dataclass
class Topology:
    name: str
    url: str
    #: (master port, replica port) that hold `key` now.
    holders: Callable[[str], tuple[int, int]]
    kill: Callable[[int], None]
    revive: Callable[[int], None]


def _sentinel(setup: LocalSentinel) -> Topology:
    def holders(key: str) -> tuple[int, int]:
        master = setup.master_port()
        return master, next(p for p in setup.data_ports if p != master)

    return Topology("Sentinel", setup.url, holders, setup.kill, setup.revive)


def _cluster(setup: LocalCluster) -> Topology:
    def holders(key: str) -> tuple[int, int]:
        master, replicas = setup.role_map(key)
        return master, replicas[0]

    return Topology("Cluster", setup.url, holders, setup.kill, setup.revive)


@pytest.fixture(scope="module", params=["sentinel", "cluster"])
def topology(request: pytest.FixtureRequest) -> Topology:
    if request.param == "sentinel":
        return _sentinel(request.getfixturevalue("redis_sentinel"))
    return _cluster(request.getfixturevalue("redis_cluster"))


@pytest.fixture(scope="module")
def verifiers(
    topology: Topology, jwks_server: JwksServer, logs: Path
) -> Iterator[list[VerifierProcess]]:
    processes = [
        VerifierProcess(verifier_env(jwks_server.jwks_url, topology.url), logs) for _ in range(2)
    ]
    try:
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            process.stop()


def _sid_beside_the_channel(topology: Topology) -> str:
    """A session id whose key lives on the master that serves the events channel's slot:
    on a Cluster that master then holds the session and the verifiers' subscription, so
    killing it takes both away, as killing a Sentinel master does."""
    channel = topology.holders(SESSION_EVENTS_CHANNEL)[0]
    while True:
        sid = new_session_id()
        if topology.holders(session_key(sid))[0] == channel:
            return sid


def _status(http: httpx.Client, url: str, token: str) -> int:
    try:
        return http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
    except httpx.HTTPError:
        return 0


def test_live_session_is_admitted_and_revoked_one_refused(
    topology: Topology,
    verifiers: list[VerifierProcess],
    signing_key: SigningKey,
    pytestconfig: pytest.Config,
) -> None:
    sessions = Sessions(topology.url)
    sid = sessions.create("topology", sid=_sid_beside_the_channel(topology))
    token = mint(signing_key, sid, "topology")
    with httpx.Client(timeout=5) as http:
        for verifier in verifiers:
            assert _status(http, verifier.url + "/verify", token) == 204
            assert _status(http, verifier.url + "/verify", token) == 204  # from the cache
        began = time.perf_counter()
        sessions.end(sid)
        for verifier in verifiers:
            url = verifier.url + "/verify"
            wait_until(lambda url=url: _status(http, url, token) == 401, 2,  # type: ignore[misc]
                       f"{topology.name}: the revoked session is still admitted")  # fmt: skip
        figure(pytestconfig, f"{topology.name}: revocation enforced by both verifiers in "
                             f"{(time.perf_counter() - began) * 1000:.0f} ms")  # fmt: skip


class Load:
    """Each verifier asked about a live and a revoked session in a loop; every answer
    kept with its time."""

    def __init__(self, verifiers: list[VerifierProcess], tokens: dict[str, str]) -> None:
        self.answers: list[tuple[float, int, str, int]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i, v.url + "/verify", tokens), daemon=True)
            for i, v in enumerate(verifiers)
        ]

    def _run(self, index: int, url: str, tokens: dict[str, str]) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                for kind, token in tokens.items():
                    status = _status(http, url, token)
                    self.answers.append((time.monotonic(), index, kind, status))
                time.sleep(0.01)  # light load: ~50 requests a second per verifier

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def since(self, moment: float, kind: str) -> list[tuple[float, int, str, int]]:
        return [a for a in self.answers if a[0] >= moment and a[2] == kind]


def test_failover_never_admits_a_revoked_session_and_recovers(
    topology: Topology,
    verifiers: list[VerifierProcess],
    signing_key: SigningKey,
    pytestconfig: pytest.Config,
) -> None:
    sessions = Sessions(topology.url)
    live, revoked = _sid_beside_the_channel(topology), _sid_beside_the_channel(topology)
    sessions.create("live", sid=live)
    sessions.create("revoked", sid=revoked)
    tokens = {
        "live": mint(signing_key, live, "live"),
        "revoked": mint(signing_key, revoked, "revoked"),
    }
    master, replica = topology.holders(session_key(live))
    with httpx.Client(timeout=5) as http:  # both cached by both verifiers
        for verifier in verifiers:
            for token in tokens.values():
                assert _status(http, verifier.url + "/verify", token) == 204
    sessions.end(revoked)
    # "Revoked before the failover": the replica that takes over has the deletion too
    # (what asynchronous replication may lose before that is in docs/scaling.md).
    with redis.Redis(port=replica) as copy:
        if topology.name == "Cluster":
            copy.execute_command("READONLY")  # a cluster replica answers for its slots
        # Both ways, so a replica still syncing cannot pass for one that is up to date.
        wait_until(
            lambda: copy.exists(session_key(live)) and not copy.exists(session_key(revoked)),
            10, "the replica never held the live session without the revoked one",
        )  # fmt: skip
    with Load(verifiers, tokens) as load:
        wait_until(lambda: len(load.since(0, "live")) >= 20, 10, "no load")
        killed_at = time.monotonic()
        topology.kill(master)
        try:
            # Recovered: after refusing it, both verifiers admit the live session again,
            # five times running.
            def recovered() -> bool:
                after = load.since(killed_at, "live")
                refused = [a[0] for a in after if a[3] in (503, 401)]
                if not refused:
                    return False
                for index in range(len(verifiers)):
                    last = [a[3] for a in after if a[1] == index and a[0] > refused[0]][-5:]
                    if last != [204] * 5:
                        return False
                return True

            wait_until(recovered, 30, f"{topology.name}: never recovered after the failover")
            recovered_at = time.monotonic()
            # Revoked on the new master, under the same load: each verifier's first
            # refusal of it, and never an admission after that.
            sessions.end(live)
            ended_at = time.monotonic()

            def refused_by_both() -> bool:
                after = load.since(ended_at, "live")
                return all(
                    any(a[1] == i and a[3] == 401 for a in after) for i in range(len(verifiers))
                )

            wait_until(refused_by_both, 5, f"{topology.name}: the revocation after the failover")
            latencies = [
                next(a[0] for a in load.since(ended_at, "live") if a[1] == i and a[3] == 401)
                - ended_at
                for i in range(len(verifiers))
            ]
            time.sleep(0.2)  # more answers after both refused
            late = [a for a in load.since(ended_at + max(latencies), "live") if 200 <= a[3] < 300]
        finally:
            topology.revive(master)
    assert not late, f"{topology.name}: admitted after both verifiers refused it: {late[:3]}"
    admitted = [a for a in load.answers if a[2] == "revoked" and 200 <= a[3] < 300]
    assert not admitted, f"{topology.name}: a revoked session was admitted: {admitted[:3]}"
    during = [a[3] for a in load.since(killed_at, "live") if a[0] < recovered_at]
    closed = [s for s in during if s in (503, 401)]
    assert closed, f"{topology.name}: never failed closed while the master was gone"
    assert set(during) <= {204, 503, 401}, set(during)
    first_closed = next(a[0] for a in load.since(killed_at, "live") if a[3] in (503, 401))
    figure(
        pytestconfig,
        f"{topology.name} failover: recovered {recovered_at - killed_at:.2f} s after the"
        f" master was killed; first refusal after {first_closed - killed_at:.2f} s;"
        f" {len(closed)} of {len(during)} live requests refused meanwhile (503/401),"
        f" {len([a for a in load.answers if a[2] == 'revoked'])} revoked requests, none admitted;"
        f" a revocation on the new master reached the two verifiers in"
        f" {' / '.join(f'{x * 1000:.0f}' for x in latencies)} ms",
    )
