"""Redis and RabbitMQ for a test session, found by one rule for both:

1. `AUTHGATE_TEST_REDIS_URL` / `AUTHGATE_TEST_AMQP_URL` if set (and it must answer);
2. else the default local port, if something answers there;
3. else testcontainers, where a Docker engine answers (a client without an engine is
   told apart in well under a second);
4. else a private `redis-server` / `rabbitmq-server` on free ports in a temporary
   directory (`stack/services.py`), stopped when the session ends.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stack.processes import StartFailed, free_ports
from stack.services import (
    DEFAULTS,
    Unavailable,
    amqp_problem,
    local_instance,
    redis_problem,
)

VARIABLES = {"redis": "AUTHGATE_TEST_REDIS_URL", "amqp": "AUTHGATE_TEST_AMQP_URL"}


def docker_problem(timeout: float = 0.3) -> str | None:
    """None when a Docker engine answers `GET /_ping`, else why not (fast either way)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        elif parts.scheme == "tcp" and parts.hostname:
            sock = socket.create_connection((parts.hostname, parts.port or 2375), timeout)
        else:
            return f"DOCKER_HOST={host} is not a socket this check knows"
        with sock:
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(256)
    except OSError as exc:
        return f"no Docker engine at {host} ({exc})"
    if b" 200 " not in answer.split(b"\r\n", 1)[0]:
        return f"Docker at {host} answered {answer[:40]!r}"
    return None


def _problem(kind: str, url: str) -> str | None:
    return redis_problem(url) if kind == "redis" else amqp_problem(url)


@contextmanager
def _container(kind: str) -> Iterator[str]:
    if kind == "redis":
        from testcontainers.redis import RedisContainer

        with RedisContainer() as redis_box:
            host, port = redis_box.get_container_host_ip(), redis_box.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
    else:
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer() as rabbit_box:
            host, port = rabbit_box.get_container_host_ip(), rabbit_box.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"


@contextmanager
def backend(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of `kind` ("redis" or "amqp") for this session, by the rule above."""
    variable = VARIABLES[kind]
    if os.environ.get(variable):
        url = os.environ[variable]
        problem = _problem(kind, url)
        if problem is not None:
            pytest.exit(f"{variable}={url} does not answer: {problem}", 2)
        yield url
        return
    default = DEFAULTS[kind][1]
    if _problem(kind, default) is None:
        yield default
        return
    if docker_problem() is None:
        with _container(kind) as url:
            yield url
        return
    instance = local_instance(kind, workdir, free_ports(1)[0])
    try:
        try:
            instance.start()
        except (StartFailed, Unavailable, OSError) as exc:
            pytest.exit(f"could not start a private {instance.name}: {exc}", 2)
        yield instance.url
    finally:
        instance.stop()
