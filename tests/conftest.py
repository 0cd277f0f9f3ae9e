"""Session-wide real services: Redis, a JWKS endpoint, the verifier, nginx, an upstream,
and a three-node RabbitMQ cluster for the failover tests.

Redis and RabbitMQ are found, or started, by the rule in `tests/backends.py`.
Expensive things are shared per session; each test makes its own sessions and tokens, so
no state needs resetting between tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from issuer.signing import SigningKey
from stack.nginx import NGINX_DIR, Nginx
from stack.processes import StartFailed, free_port
from stack.rabbitmq_cluster import RabbitMQCluster
from stack.redis_ha import LocalCluster, LocalSentinel
from stack.services import Unavailable
from verifier.settings import SERVERS

from .backends import backend
from .harness import EchoUpstream, JwksServer, Sessions, VerifierProcess, verifier_env
from .social import social  # noqa: F401 - a fixture, shared by the issuer tests

TOPOLOGIES = ("standalone", "sentinel", "cluster")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-topology", choices=TOPOLOGIES, default="standalone",
        help="the Redis the behaviour suite runs on: standalone (found or started by "
        "tests/backends.py), or the session's own Sentinel or Cluster",
    )  # fmt: skip


@pytest.fixture(scope="session")
def standalone_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Redis server, whatever the topology the suite runs on: for the tests whose method
    needs a single server (a TCP proxy cut in front of it, scripts recorded on one
    server, CLIENT ID, databases by number)."""
    with backend("redis", tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """The Redis the behaviour suite runs on (`--redis-topology`)."""
    topology = request.config.getoption("--redis-topology")
    if topology == "standalone":
        return str(request.getfixturevalue("standalone_redis_url"))
    return str(request.getfixturevalue(f"redis_{topology}").url)


@pytest.fixture(scope="session")
def private_redis(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[int], str]]:
    """`private_redis(n)`: a Redis of the suite's topology that none of the session's other
    services write to (tests running relays of their own need streams no other relay
    reads). Database `n` of the suite's Redis; a Cluster has only database 0, so there it
    is a small Cluster of its own per `n` (3 masters, no replicas), started on first use."""
    if request.config.getoption("--redis-topology") != "cluster":
        yield lambda n: redis_url.rsplit("/", 1)[0] + f"/{n}"
        return
    spares: dict[int, LocalCluster] = {}

    def spare(n: int) -> str:
        if n not in spares:
            spares[n] = LocalCluster(tmp_path_factory.mktemp(f"redis-cluster-{n}"), replicas=0)
            spares[n].start()
        return spares[n].url

    try:
        yield spare
    finally:
        for cluster in spares.values():
            cluster.stop()


@pytest.fixture(scope="session")
def amqp_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backend("amqp", tmp_path_factory.mktemp("rabbitmq")) as url:
        yield url


def figure(config: pytest.Config, line: str) -> None:
    """A measured figure, shown in the run's output whether or not output is captured."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(f"[figure] {line}")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n[figure] {line}")


@pytest.fixture(scope="session")
def rabbitmq_cluster(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[RabbitMQCluster]:
    """Three private RabbitMQ nodes on loopback, clustered (`stack/rabbitmq_cluster.py`);
    started once, on first use. A test that kills a node `revive()`s it on its way out (its
    boot overlaps the tests that follow) and each test calls `heal()` first thing."""
    cluster = RabbitMQCluster(tmp_path_factory.mktemp("rabbitmq-cluster"))
    try:
        try:
            cluster.start()
        except (StartFailed, Unavailable, OSError, TimeoutError) as exc:
            pytest.exit(f"could not start a RabbitMQ cluster: {exc}", 2)
        figure(pytestconfig, f"RabbitMQ cluster of {len(cluster.nodes)} nodes started in "
                             f"{cluster.start_seconds:.1f} s")  # fmt: skip
        yield cluster
    finally:
        cluster.stop()


#: How long each highly available Redis took to start, for the end-of-session summary.
STARTED_IN: dict[str, float] = {}


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSentinel]:
    """1 master, 1 replica, 3 sentinels: started the first time a test asks, once."""
    setup = LocalSentinel(tmp_path_factory.mktemp("redis-sentinel"))
    try:
        began = time.monotonic()
        setup.start()
        STARTED_IN["Redis Sentinel (1 master, 1 replica, 3 sentinels)"] = time.monotonic() - began
        yield setup
    finally:
        setup.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """3 masters with a replica each: started the first time a test asks, once."""
    setup = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        setup.start()
        STARTED_IN["Redis Cluster (3 masters, 3 replicas)"] = setup.started_in
        yield setup
    finally:
        setup.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for what, seconds in STARTED_IN.items():
        terminalreporter.write_line(f"{what}: started in {seconds:.2f} s")


@pytest.fixture(scope="session")
def sessions(redis_url: str) -> Sessions:
    return Sessions(redis_url)


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return SigningKey.generate("EdDSA", kid="test-key-1")


@pytest.fixture(scope="session")
def jwks_server(signing_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer()
    server.publish([signing_key])
    yield server
    server.close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[EchoUpstream]:
    server = EchoUpstream()
    yield server
    server.close()


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session", params=SERVERS)
def verifier_server(request: pytest.FixtureRequest) -> str:
    """Each HTTP server the verifier runs under (AUTHGATE_SERVER): every test that starts
    a verifier runs once against each, so both keep the same behaviour."""
    return str(request.param)


@pytest.fixture(scope="session")
def verifier(
    jwks_server: JwksServer, redis_url: str, logs: Path, verifier_server: str
) -> Iterator[VerifierProcess]:
    """The verifier shared by most tests (tests that fault the JWKS start their own)."""
    env = verifier_env(jwks_server.jwks_url, redis_url, AUTHGATE_SERVER=verifier_server)
    process = VerifierProcess(env, logs)
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def nginx(
    verifier: VerifierProcess, upstream: EchoUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """nginx from the project's example config, in front of the echo upstream; its URL."""
    port = free_port()
    server = Nginx(
        tmp_path_factory.mktemp("nginx"),
        NGINX_DIR / "templates" / "example.conf.template",
        {
            "AUTHGATE_NGINX_LISTEN": f"127.0.0.1:{port}",
            "AUTHGATE_VERIFIER_ADDR": f"127.0.0.1:{verifier.port}",
            "AUTHGATE_UPSTREAM_ADDR": f"127.0.0.1:{upstream.port}",
            "AUTHGATE_DEMO_UPSTREAM_LISTEN": f"127.0.0.1:{free_port()}",
        },
    )
    server.start(port)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        yield http
