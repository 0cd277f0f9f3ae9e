"""plugins/idempotency.py in kong-pdk's real plugin server, driven over its socket as Kong does."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stack.processes import free_port

from ..gateway_harness import CountingUpstream
from ..harness import TcpProxy
from ..kong_rpc import PLUGIN, MiniKong, PluginServer, Request


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginServer]:
    prefix = tmp_path_factory.mktemp("kong-prefix")
    process = PluginServer(prefix, prefix / "pluginserver.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream(delay=0.3)
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def kong(server: PluginServer, counting: CountingUpstream, redis_url: str) -> MiniKong:
    return MiniKong(server, {"redis_url": redis_url, "lock_seconds": 30}, counting.url)


def write(path: str, idem: str, body: bytes = b"{}", user: str = "alice") -> Request:
    headers = {"Content-Type": "application/json", "Idempotency-Key": idem, "X-Auth-User": user}
    return Request("POST", path, headers, body)


def unique() -> str:
    return secrets.token_hex(8)


def test_query_command_describes_the_plugin() -> None:
    # Kong's pluginserver_<name>_query_cmd: what it learns the plugin's phases and schema from.
    out = subprocess.run(
        [sys.executable, str(PLUGIN), "--dump"], capture_output=True, check=True, timeout=30
    )
    (info,) = json.loads(out.stdout)
    assert info["Name"] == "idempotency" and info["Priority"] == 900
    assert set(info["Phases"]) == {"access", "response", "log"}
    fields = info["Schema"]["fields"][0]["config"]["fields"]
    assert {"redis_url", "fail_open", "lock_seconds"} <= {next(iter(f)) for f in fields}


def test_fifty_concurrent_identical_requests_run_once(
    kong: MiniKong, counting: CountingUpstream
) -> None:
    path, idem = f"/orders/{unique()}", unique()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: kong.handle(write(path, idem)), range(50)))
    assert counting.count(path) == 1
    firsts = [a for a in answers if a[0] == 201 and "Idempotent-Replayed" not in a[1]]
    replays = [a for a in answers if a[1].get("Idempotent-Replayed") == "true"]
    busy = [a for a in answers if a[0] == 409]
    assert len(firsts) == 1 and len(firsts) + len(replays) + len(busy) == 50
    assert all(r[2] == firsts[0][2] and r[0] == 201 for r in replays)
    assert all(int(b[1]["Retry-After"]) >= 1 for b in busy)
    status, headers, body = kong.handle(write(path, idem))
    assert (status, headers["Idempotent-Replayed"], body) == (201, "true", firsts[0][2])
    assert counting.count(path) == 1


def test_same_key_other_body_is_422(kong: MiniKong, counting: CountingUpstream) -> None:
    path, idem = f"/pay/{unique()}", unique()
    assert kong.handle(write(path, idem, b'{"amount": 1}'))[0] == 201
    status, headers, body = kong.handle(write(path, idem, b'{"amount": 2}'))
    assert status == 422 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["type"].endswith("key-reused")
    assert counting.count(path) == 1


def test_other_user_same_key_reaches_the_upstream(
    kong: MiniKong, counting: CountingUpstream
) -> None:
    path, idem = f"/notes/{unique()}", unique()
    alice = kong.handle(write(path, idem, user="alice"))
    bob = kong.handle(write(path, idem, user="bob"))
    assert json.loads(alice[2])["user"] == "alice" and json.loads(bob[2])["user"] == "bob"
    assert "Idempotent-Replayed" not in bob[1]
    assert counting.count(path) == 2


def test_redis_unreachable_is_503(server: PluginServer, counting: CountingUpstream) -> None:
    kong = MiniKong(server, {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}, counting.url)
    path = f"/down/{unique()}"
    status, _, body = kong.handle(write(path, unique()))
    assert status == 503 and json.loads(body)["type"].endswith("unavailable")
    assert counting.count(path) == 0


def test_lock_released_after_upstream_connection_failure(
    server: PluginServer, counting: CountingUpstream, redis_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", counting.port)
    kong = MiniKong(server, {"redis_url": redis_url}, f"http://127.0.0.1:{proxy.port}")
    try:
        path, idem = f"/flaky/{unique()}", unique()
        proxy.cut()
        assert kong.handle(write(path, idem))[0] == 502
        proxy.restore()
        deadline = time.monotonic() + 10
        while (retry := kong.handle(write(path, idem)))[0] == 409:
            assert time.monotonic() < deadline, "the lock was never released"
            time.sleep(0.05)
        assert retry[0] == 201 and "Idempotent-Replayed" not in retry[1]
        assert counting.count(path) == 1
    finally:
        proxy.close()


def test_instance_config_reaches_the_plugin(server: PluginServer, tmp_path: Path) -> None:
    # StartInstance answers with the config Kong sent; a bad one fails at start, loudly.
    with pytest.raises(RuntimeError, match="redis"):
        server.call(
            "plugin.StartInstance",
            {"Name": "idempotency", "Config": json.dumps({"redis_url": "nope://"})},
        )
