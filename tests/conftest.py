"""Session-wide real services: Redis, a JWKS endpoint, the verifier, nginx, an upstream.

Redis is found at AUTHGATE_TEST_REDIS_URL, else on its default local port; failing both,
testcontainers starts one where Docker runs, else a throwaway `redis-server` is started
if the binary is installed. Expensive things are shared per session; each test makes its
own sessions and tokens, so no state needs resetting between tests.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from authgate.nginx import NGINX_DIR, Nginx, free_port, wait_for_port
from authgate.signing import SigningKey

from .harness import EchoUpstream, JwksServer, Sessions, VerifierProcess, verifier_env
from .social import social  # noqa: F401 - a fixture, shared by the issuer tests

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import os

    url = os.environ.get("AUTHGATE_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    if _answers(url):
        yield url
        return
    try:
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
            return
    except Exception as exc:  # no Docker engine here: fall through to a local binary
        reason = f"{type(exc).__name__}: {exc}"
    server = shutil.which("redis-server")
    if server is None:
        pytest.exit(f"no Redis at {url}, no Docker ({reason}), no redis-server binary", 2)
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """RabbitMQ at AUTHGATE_TEST_AMQP_URL, else on its default local port."""
    from .amqp import AMQP_URL, reachable

    problem = reachable()
    if problem is not None:
        pytest.fail(
            f"no RabbitMQ at {AMQP_URL} ({problem}); start one or set AUTHGATE_TEST_AMQP_URL"
        )
    return AMQP_URL


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


@pytest.fixture(scope="session")
def verifier(jwks_server: JwksServer, redis_url: str, logs: Path) -> Iterator[VerifierProcess]:
    """The verifier shared by most tests (tests that fault the JWKS start their own)."""
    process = VerifierProcess(verifier_env(jwks_server.jwks_url, redis_url), logs)
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
