"""A slow client can't hold the issuer (issue 12, finding 10): headers that never end
and a body that stalls are cut off, and others are served meanwhile."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..identity import IssuerProcess


@pytest.fixture(scope="module")
def impatient_issuer(
    redis_url: str, amqp_url: str, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IssuerProcess]:
    work = tmp_path_factory.mktemp("impatient")
    issuer = IssuerProcess(
        {"AUTHGATE_REDIS_URL": redis_url, "AUTHGATE_KEYS_DIR": str(work / "keys"),
         "AUTHGATE_LOCAL_ACCOUNTS": "true", "AUTHGATE_HEADER_TIMEOUT": "1",
         "AUTHGATE_BODY_TIMEOUT": "1"},
        logs,
        amqp_url=amqp_url,
    )  # fmt: skip
    yield issuer
    issuer.stop()


def _closed(sock: socket.socket) -> bool:
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 4")  # closed, or refused outright


def test_slowloris_and_stalled_bodies_are_cut_off(impatient_issuer: IssuerProcess) -> None:
    port = impatient_issuer.port
    slow = []
    for n in range(20):
        sock = socket.create_connection(("127.0.0.1", port))
        if n % 2:  # headers that never end
            sock.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        else:  # a form post whose body stalls
            sock.sendall(b"POST /login/local HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail=")  # fmt: skip
        sock.setblocking(False)
        slow.append(sock)
    started = time.monotonic()
    try:
        assert httpx.get(impatient_issuer.url + "/healthz", timeout=2).status_code == 200
        deadline = started + 8
        while time.monotonic() < deadline and not all(_closed(s) for s in slow):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"a")  # a trickle, slower than the deadline allows
            time.sleep(0.3)
        assert all(_closed(s) for s in slow), "a slow client kept its connection"
        assert time.monotonic() - started < 6
    finally:
        for sock in slow:
            sock.close()
