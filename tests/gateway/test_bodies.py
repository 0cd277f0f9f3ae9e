"""Issue 12, finding 4: request bodies are bounded by `client_max_body_size`, answered 413
(problem+json) when over it, and streamed to the upstream where no plugin reads them.

nginx, which Kong runs in, refuses a declared Content-Length over the limit before reading
any of the body, and a chunked body the moment it passes the limit; Kong's own default is
0 (unlimited, kong/templates/kong_defaults.lua:90), its Admin API's 10m (:114).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..gateway_harness import GatewayProcess, gateway_env, run_gateway
from .wire import RawUpstream, corpus, send

LIMIT: int = corpus("limit")
PIECE = 64 * 1024


def config(upstream: RawUpstream, redis_url: str) -> dict[str, Any]:
    plugin = {"name": "idempotency", "config": {"redis_url": redis_url}}
    return {
        "_format_version": "3.0",
        "services": [
            {
                "name": "s",
                "url": upstream.url,
                "routes": [
                    {"name": "stream", "paths": ["/stream"]},
                    {"name": "idem", "paths": ["/idem"], "plugins": [plugin]},
                ],
            }
        ],
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    end = RawUpstream()
    yield end
    end.close()


@pytest.fixture(scope="module")
def gateway(
    upstream: RawUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    doc = config(upstream, redis_url)
    process = GatewayProcess(
        doc, tmp_path_factory.mktemp("gw-body"), gateway_env(client_max_body_size=str(LIMIT))
    )
    yield process
    process.stop()


def chunked(size: int) -> Iterator[bytes]:
    while size > 0:
        piece = min(size, PIECE)
        yield b"%x\r\n" % piece + b"x" * piece + b"\r\n"
        size -= piece
    yield b"0\r\n\r\n"


@pytest.mark.parametrize(
    "case", corpus("bodies"), ids=lambda c: f"{c['route']}-{c['framing']}-{c['size']}"
)
def test_corpus_body(gateway: GatewayProcess, upstream: RawUpstream, case: dict[str, Any]) -> None:
    upstream.clear()
    target = f"/{case['route']}/{secrets.token_hex(6)}"
    headers = [("Content-Type", "application/octet-stream"), ("Idempotency-Key", target)]
    size = case["size"]
    if case["framing"] == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        body: Any = chunked(size)
    else:
        headers.append(("Content-Length", str(size)))
        # Over the limit, no byte of the body is sent: the answer must not wait for it.
        body = b"" if size > LIMIT else b"x" * size
    status, answer, data = send(gateway.port, "POST", target, headers, body, timeout=10)
    assert status == case["status"], case["why"]
    path = "/" + target.split("/")[2]
    got = [s for s in upstream.seen if s.target == path]
    if status == 413:
        assert answer["content-type"] == "application/problem+json"
        problem = httpx.Response(413, content=data).json()
        assert problem["status"] == 413 and problem["type"].endswith("/body-too-large")
        # The upstream never received a complete request (at most a cut-off one).
        assert not [s for s in got if s.complete], case["why"]
    else:
        assert [(s.size, s.complete) for s in got] == [(size, True)]


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_large_streamed_upload_does_not_balloon(
    upstream: RawUpstream, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    size = 100 * 1024 * 1024
    gw = GatewayProcess(
        config(upstream, redis_url),
        tmp_path_factory.mktemp("gw-rss"),
        gateway_env(client_max_body_size="200m"),
    )
    try:
        with gw.client() as client:  # warm up: imports, the connection pool
            assert client.post("/stream/warm", content=b"x" * PIECE).status_code == 200
        before = rss_kib(gw.process.pid)
        started = time.monotonic()
        status, _, _ = send(
            gw.port, "POST", "/stream/big", [("Transfer-Encoding", "chunked")], chunked(size)
        )
        assert status == 200
        grown = rss_kib(gw.process.pid) - before
        (seen,) = [s for s in upstream.seen if s.target == "/big"]
        assert (seen.size, seen.complete) == (size, True)
        assert grown < 100 * 1024, f"serve grew {grown} KiB streaming {size} bytes"
        assert time.monotonic() - started < 60
    finally:
        gw.stop()


def test_limit_flag_is_validated(tmp_path_factory: pytest.TempPathFactory) -> None:
    done = run_gateway("serve", "--client-max-body-size", "ten", "-", stdin="")
    assert done.returncode != 0 and "client-max-body-size" in done.stderr
