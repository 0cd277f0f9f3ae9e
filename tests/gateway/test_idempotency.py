"""plugins/idempotency.py against real Redis, in both of its hosts.

Every behaviour runs twice: through `authgate-gateway serve`, and in kong-pdk's real
plugin server driven over its socket as Kong drives it (`hosts.py`). The last tests are
about the plugin server's own contract with Kong and run there only.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from authgate import redis_client
from stack.processes import free_port

from ..gateway_harness import CountingUpstream
from ..harness import TcpProxy, _Server
from ..kong_rpc import PLUGIN, MiniKong, PluginServer, Request
from ..polling import poll
from .hosts import Answer, Host, PluginServerHost, ServeHost


@pytest.fixture(scope="module")
def counting() -> Iterator[CountingUpstream]:
    upstream = CountingUpstream(delay=0.3)
    yield upstream
    upstream.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginServer]:
    prefix = tmp_path_factory.mktemp("kong-prefix")
    process = PluginServer(prefix, prefix / "pluginserver.log")
    yield process
    process.stop()


@pytest.fixture(scope="module", params=["serve", "pluginserver"])
def host(
    request: pytest.FixtureRequest,
    counting: CountingUpstream,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Host]:
    plugin = {"redis_url": redis_url, "lock_seconds": 30}
    if request.param == "serve":
        serve = ServeHost(counting.url, plugin, tmp_path_factory)
        yield serve
        serve.stop()
    else:
        yield PluginServerHost(request.getfixturevalue("server"), counting.url, plugin)


def key() -> str:
    return "k-" + secrets.token_hex(8)


def post(
    host: Host, path: str, body: bytes, idem: str | None, user: str = "alice", **h: str
) -> Answer:
    headers = {"Content-Type": "application/json", "X-Auth-User": user, **h}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return host.send("POST", path, body, headers)


def test_fifty_concurrent_identical_posts_run_once(host: Host, counting: CountingUpstream) -> None:
    path, idem, body = f"/orders/{key()}", key(), b'{"amount": 5}'
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: post(host, path, body, idem), range(50)))
    assert counting.count(path) == 1
    first = [r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replays = [r for r in answers if r.headers.get("idempotent-replayed") == "true"]
    busy = [r for r in answers if r.status_code == 409]
    assert len(first) == 1
    assert len(first) + len(replays) + len(busy) == 50
    for replay in replays:
        assert replay.status_code == 201
        assert replay.content == first[0].content
        assert replay.headers["location"] == first[0].headers["location"]
        assert "x-not-replayed" not in replay.headers  # only the allow-list is kept
    for refusal in busy:
        assert int(refusal.headers["retry-after"]) >= 1
        assert refusal.headers["content-type"] == "application/problem+json"
        assert refusal.json()["status"] == 409

    # Once completed, every retry is a replay and the upstream never sees it.
    again = post(host, path, body, idem)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first[0].content
    assert counting.count(path) == 1


def test_same_key_other_request_is_422(host: Host, counting: CountingUpstream) -> None:
    path, idem = f"/pay/{key()}", key()
    assert post(host, path, b'{"amount": 1}', idem).status_code == 201
    changed = post(host, path, b'{"amount": 2}', idem)
    other_path = post(host, path + "x", b'{"amount": 1}', idem)
    other_query = post(host, path + "?dry=1", b'{"amount": 1}', idem)
    other_type = post(host, path, b'{"amount": 1}', idem, **{"Content-Type": "text/plain"})
    for answer in (changed, other_path, other_query, other_type):
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("key-reused")
    assert counting.count(path) == 1


def test_query_order_does_not_matter(host: Host, counting: CountingUpstream) -> None:
    path, idem = f"/q/{key()}", key()
    assert post(host, path + "?a=1&b=2", b"{}", idem).status_code == 201
    replay = post(host, path + "?b=2&a=1", b"{}", idem)
    assert replay.headers.get("idempotent-replayed") == "true"


def test_other_user_with_same_key_is_a_new_request(host: Host, counting: CountingUpstream) -> None:
    path, idem, body = f"/notes/{key()}", key(), b'{"text": "hi"}'
    alice = post(host, path, body, idem, user="alice")
    bob = post(host, path, body, idem, user="bob")
    bob_again = post(host, path, body, idem, user="bob")
    assert alice.json()["user"] == "alice"
    assert bob.status_code == 201 and "idempotent-replayed" not in bob.headers
    assert bob.json()["user"] == "bob"  # bob never sees alice's response
    assert bob_again.json() == bob.json() and bob_again.headers["idempotent-replayed"] == "true"
    assert counting.count(path) == 2


def test_key_rules(host: Host, counting: CountingUpstream) -> None:
    path = f"/k/{key()}"
    for bad in (b"x" * 256, b"tab\there", "é-accent".encode(), b'""'):
        answer = host.send("POST", path, b"{}", {b"Idempotency-Key": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["type"].endswith("key-malformed")
    # The draft's structured-field form and the bare form name one key.
    idem = key()
    assert post(host, path, b"{}", f'"{idem}"').status_code == 201
    legacy = post(host, path, b"{}", None, **{"X-Idempotency-Key": idem})
    assert legacy.headers.get("idempotent-replayed") == "true"
    # Without a key (not required here) and on GET, the plugin stays out of the way.
    assert post(host, path, b"{}", None).status_code == 201
    assert host.send("GET", path, b"", {"Idempotency-Key": idem}).status_code == 201
    assert counting.count(path) == 3


def test_large_bodies_are_fingerprinted_whole(host: Host, counting: CountingUpstream) -> None:
    # Past Kong's 8 KiB body buffer the plugin asks Kong to read its temp file
    # (kong/pdk/request.lua:714-760 at 3.9.1): two large bodies never share a fingerprint.
    path, idem = f"/large/{key()}", key()
    assert post(host, path, b"a" * 20000, idem).status_code == 201
    assert post(host, path, b"b" * 20000, idem).status_code == 422
    assert post(host, path, b"a" * 20000, idem).headers.get("idempotent-replayed") == "true"
    assert counting.count(path) == 1


def test_body_over_the_limit_is_413(host: Host, counting: CountingUpstream, redis_url: str) -> None:
    with host.variant({"redis_url": redis_url, "max_request_body_bytes": 16384}) as small:
        path = f"/over/{key()}"
        answer = post(small, path, b"a" * 20000, key())
        assert answer.status_code == 413 and answer.json()["type"].endswith("body-too-large")
        assert post(small, path, b"a" * 16384, key()).status_code == 201
    assert counting.count(path) == 1


def test_upstream_5xx_is_stored_by_default(host: Host, counting: CountingUpstream) -> None:
    path, idem = f"/status/500/{key()}", key()
    assert post(host, path, b"{}", idem).status_code == 500
    replay = post(host, path, b"{}", idem)
    assert replay.status_code == 500 and replay.headers["idempotent-replayed"] == "true"
    assert counting.count(path) == 1


def test_scripts_flushed_from_redis_are_loaded_again(
    host: Host, counting: CountingUpstream, redis_url: str
) -> None:
    # A restarted or flushed Redis has none of the plugin's scripts: EVALSHA answers
    # NOSCRIPT, and the plugin loads the script and runs it (serve's pipelined path too).
    path, idem = f"/flushed/{key()}", key()
    client = redis_client.connect_blocking(redis_url)  # on a Cluster, flushes every master
    try:
        assert post(host, f"/warm/{key()}", b"{}", key()).status_code == 201
        client.script_flush()
        assert post(host, path, b"{}", idem).status_code == 201  # ACQUIRE, then COMPLETE
        client.script_flush()
        replay = post(host, path, b"{}", idem)
        assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    finally:
        client.close()
    assert counting.count(path) == 1


class BinaryUpstream(_Server):
    """Answers 201 with every byte value once: a body that is not UTF-8."""

    BODY = bytes(range(256))

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(201)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(BinaryUpstream.BODY)))
                self.end_headers()
                self.wfile.write(BinaryUpstream.BODY)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)


def test_a_body_that_is_not_utf8_is_replayed_byte_for_byte(host: Host, redis_url: str) -> None:
    # Both hosts' Redis clients keep replies as bytes (serve's asyncio one too).
    upstream = BinaryUpstream()
    try:
        with host.variant({"redis_url": redis_url}, upstream.url) as gw:
            path, idem = f"/bytes/{key()}", key()
            first = post(gw, path, b"{}", idem)
            replay = post(gw, path, b"{}", idem)
    finally:
        upstream.close()
    assert first.status_code == 201 and first.content == BinaryUpstream.BODY
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.status_code == 201 and replay.content == BinaryUpstream.BODY


def test_keys_are_stored_hashed(host: Host, redis_url: str) -> None:
    idem = key()
    post(host, f"/h/{key()}", b"{}", idem, user="carol-secret-id")
    # Stored bodies are bytes as they came; on a Cluster, the scan covers every master.
    client = redis_client.connect_target(
        redis_client.parse(redis_url), timeout=5, blocking=True, decode=False
    )
    try:
        names = list(client.scan_iter("authgate:idem:*", count=1000))
        assert names  # the request above stored its key
        for name in names:
            assert idem.encode() not in name and b"carol" not in name
            assert b"carol" not in b"".join(client.hgetall(name).keys())
    finally:
        client.close()


def test_required_and_5xx_release(host: Host, counting: CountingUpstream, redis_url: str) -> None:
    plugin = {"redis_url": redis_url, "required": True, "on_5xx": "release"}
    with host.variant(plugin) as strict:
        missing = post(strict, "/r", b"{}", None)
        assert missing.status_code == 400 and missing.json()["type"].endswith("key-missing")
        path, idem = f"/status/503/{key()}", key()
        assert post(strict, path, b"{}", idem).status_code == 503
        assert post(strict, path, b"{}", idem).status_code == 503
    assert counting.count(path) == 2  # released: the retry ran


@pytest.mark.parametrize("fail_open", [False, True])
def test_redis_unreachable(
    fail_open: bool, host: Host, counting: CountingUpstream, standalone_redis_url: str
) -> None:
    # A TCP proxy cut in front of one server, whatever the suite's topology (the plugin on
    # a Sentinel and a Cluster: tests/gateway/test_idempotency_topologies.py).
    server = urlsplit(standalone_redis_url)
    proxy = TcpProxy(server.hostname or "127.0.0.1", server.port or 6379)
    plugin = {"redis_url": f"redis://127.0.0.1:{proxy.port}/0", "fail_open": fail_open}
    try:
        with host.variant(plugin) as gw:
            path = f"/down/{key()}"
            assert post(gw, path, b"{}", key()).status_code == 201  # Redis up
            proxy.cut()
            answer = post(gw, path, b"{}", key())
            if fail_open:
                assert answer.status_code == 201
                assert counting.count(path) == 2
            else:
                assert answer.status_code == 503
                assert answer.json()["type"].endswith("unavailable")
                assert answer.headers["retry-after"] == "1"
                assert counting.count(path) == 1
            proxy.restore()
            assert post(gw, path, b"{}", key()).status_code == 201
    finally:
        proxy.close()


def test_redis_closed_port_is_503(host: Host, counting: CountingUpstream) -> None:
    with host.variant({"redis_url": f"redis://127.0.0.1:{free_port()}/0"}) as gw:
        path = f"/closed/{key()}"
        answer = post(gw, path, b"{}", key())
        assert answer.status_code == 503 and answer.json()["type"].endswith("unavailable")
    assert counting.count(path) == 0


def test_lock_released_after_upstream_connection_failure(
    host: Host, counting: CountingUpstream, redis_url: str
) -> None:
    proxy = TcpProxy("127.0.0.1", counting.port)
    try:
        path, idem = f"/flaky/{key()}", key()
        with host.variant(
            {"redis_url": redis_url}, f"http://127.0.0.1:{proxy.port}", retries=0
        ) as gw:
            proxy.cut()
            failed = post(gw, path, b"{}", idem)
            assert failed.status_code == 502
            proxy.restore()
            # The key is freed after the 502 went out (Kong's log phase): poll, never sleep.
            retry = poll(lambda: post(gw, path, b"{}", idem), lambda r: r.status_code != 409, 10,
                         "the lock was never released", interval=0.05)  # fmt: skip
        assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
        assert counting.count(path) == 1
    finally:
        proxy.close()


# The plugin server's own contract with Kong, so its host only: `serve` imports the module
# itself (gateway/plugins.py) and has neither a query command nor StartInstance.


def test_query_command_describes_the_plugin() -> None:
    # Kong's pluginserver_<name>_query_cmd: what it learns the plugin's phases and schema from.
    out = subprocess.run(
        [sys.executable, str(PLUGIN), "--dump"], capture_output=True, check=True, timeout=30
    )
    (info,) = json.loads(out.stdout)
    assert info["Name"] == "idempotency" and info["Priority"] == 900
    # No log phase: Kong 3.9 runs `response` after an upstream failure too (kong/init.lua
    # Kong.response), so the key is freed there and a request costs no log round trips.
    assert set(info["Phases"]) == {"access", "response"}
    fields = info["Schema"]["fields"][0]["config"]["fields"]
    assert {"redis_url", "fail_open", "lock_seconds"} <= {next(iter(f)) for f in fields}


def test_chunked_body_over_the_limit_is_413_never_fingerprinted(
    server: PluginServer, counting: CountingUpstream, redis_url: str
) -> None:
    # No Content-Length to refuse up front: Kong spilled the body to a file and answers nil
    # past the size asked for (kong/pdk/request.lua:714-736 at 3.9.1).
    kong = MiniKong(server, {"redis_url": redis_url, "max_request_body_bytes": 16384}, counting.url)
    path, idem = f"/chunked/{key()}", key()
    headers = {"Idempotency-Key": idem, "X-Auth-User": "alice", "Transfer-Encoding": "chunked"}
    for filler in (b"a", b"b"):
        status, got, body = kong.handle(Request("POST", path, headers, filler * 20000))
        assert status == 413 and json.loads(body)["type"].endswith("body-too-large")
        assert "16384" in json.loads(body)["detail"]
        assert got["Content-Type"] == "application/problem+json"
    assert counting.count(path) == 0


def test_round_trips_per_request(
    server: PluginServer, counting: CountingUpstream, redis_url: str
) -> None:
    # One round trip per PDK call plus the HandleEvent (mp_rpc.lua:264-298); none after an
    # exit, whose coroutine Kong never resumes (kong/pdk/response.lua:975-984).
    kong = MiniKong(server, {"redis_url": redis_url}, counting.url)
    path, idem = f"/trips/{key()}", key()
    headers = {"Idempotency-Key": idem, "X-Auth-User": "alice", "Content-Type": "application/json"}

    def trips(request: Request, through: MiniKong = kong) -> tuple[int, int]:
        before = server.trips
        status = through.handle(request)[0]
        return status, server.trips - before

    # access: HandleEvent, headers, $request, body, ctx.shared.set;
    # response: HandleEvent, ctx.shared.get, status, body, headers (a 201 is the
    # upstream's: no get_source)
    assert trips(Request("POST", path, headers, b'{"n": 1}')) == (201, 10)
    # access: HandleEvent, headers, $request, body, exit
    assert trips(Request("POST", path, headers, b'{"n": 1}')) == (201, 4)
    # access: HandleEvent, headers, buffering off (so no response phase)
    assert trips(Request("POST", path, {"X-Auth-User": "alice"}, b"{}")) == (201, 3)
    assert counting.count(path) == 2

    # A 204 has no body to fetch: 9. No request body to read either: 8.
    no_content = f"/status/204/{key()}"
    with_body = {**headers, "Idempotency-Key": key()}
    assert trips(Request("POST", no_content, with_body, b"{}")) == (204, 9)
    assert trips(Request("POST", no_content, {**headers, "Idempotency-Key": key()})) == (204, 8)
    replayed = kong.handle(Request("POST", no_content, with_body, b"{}"))
    assert replayed[0] == 204 and replayed[1]["Idempotent-Replayed"] == "true"
    assert replayed[2] == b""

    # A 502 is one of Kong's error statuses: the source is asked, found "error", the key
    # freed (response: HandleEvent, ctx.shared.get, status, source).
    down = MiniKong(server, {"redis_url": redis_url}, f"http://127.0.0.1:{free_port()}")
    retried = {**headers, "Idempotency-Key": key()}
    assert trips(Request("POST", path, retried, b"{}"), down) == (502, 9)
    assert trips(Request("POST", path, retried, b"{}")) == (201, 10)  # the key was freed


def test_no_thread_left_behind(
    server: PluginServer, counting: CountingUpstream, redis_url: str
) -> None:
    # kong-pdk runs each event on a thread that ends only when the phase returns; Kong's
    # failing PDK calls answer nil (mp_rpc.lua:113-166), which must not strand one.
    kong = MiniKong(server, {"redis_url": redis_url}, counting.url)
    baseline = server.threads()
    path, idem = f"/threads/{key()}", key()
    headers = {"Idempotency-Key": idem, "X-Auth-User": "alice"}
    answers = [
        kong.handle(Request("POST", path, headers, b"x" * 20000))[0],  # read from Kong's file
        kong.handle(Request("POST", path, headers, b"x" * 20000))[0],  # replay (exit)
        kong.handle(Request("POST", path, headers, b"y" * 20000))[0],  # 422 (exit)
        kong.handle(Request("POST", path, {"X-Auth-User": "a"}, b""))[0],  # no key
    ]
    failing = Request("POST", path + "/nil", {"Idempotency-Key": key()}, b"{}")
    failing.nil = frozenset(
        {"kong.request.get_raw_body", "kong.client.get_ip", "kong.response.get_headers"}
    )
    answers.append(kong.handle(failing)[0])  # no body to fingerprint: 413, never a hang
    assert answers == [201, 201, 422, 201, 413]
    poll(server.threads, lambda n: n <= baseline, 10, "plugin server threads left behind")


def test_close_instance(server: PluginServer, counting: CountingUpstream, redis_url: str) -> None:
    kong = MiniKong(server, {"redis_url": redis_url}, counting.url)
    old = kong.reconfigure({"redis_url": redis_url, "required": True})
    with pytest.raises(RuntimeError, match="no plugin instance"):
        server.call("plugin.HandleEvent", {"InstanceId": old, "EventName": "access"})
    status = server.call("plugin.GetStatus")["Plugins"]["idempotency"]
    assert old not in {i["Id"] for i in status["Instances"]}
    assert kong.instance in {i["Id"] for i in status["Instances"]}
    status, _, body = kong.handle(Request("POST", "/closed", {"X-Auth-User": "a"}, b"{}"))
    assert status == 400 and json.loads(body)["type"].endswith("key-missing")


def test_restarted_server_never_reuses_an_instance_id(
    tmp_path_factory: pytest.TempPathFactory, counting: CountingUpstream, redis_url: str
) -> None:
    # Kong keeps each entity's instance id across a restart of the server until told "no
    # plugin instance" (mp_rpc.lua:309-316); a reset reaches other workers only by event
    # (plugin.lua:210-224). Two workers here: one strict route, one lenient.
    prefix = tmp_path_factory.mktemp("kong-restart")
    fresh = PluginServer(prefix, prefix / "pluginserver.log")
    try:
        strict_route = {"id": "aaaaaaaa-0000-4000-8000-000000000001", "name": "strict"}
        lenient_route = {"id": "aaaaaaaa-0000-4000-8000-000000000002", "name": "lenient"}
        strict = MiniKong(
            fresh, {"redis_url": redis_url, "required": True}, counting.url, strict_route
        )
        lenient = MiniKong(fresh, {"redis_url": redis_url}, counting.url, lenient_route)
        before = {strict.instance, lenient.instance}
        fresh.restart()
        no_key = {"X-Auth-User": "alice"}
        assert lenient.handle(Request("POST", "/lenient", no_key, b"{}"))[0] == 201
        assert lenient.instance not in before
        # The strict worker still holds its old id: it must run strict's config or none.
        status, _, body = strict.handle(Request("POST", "/strict", no_key, b"{}"))
        assert status == 400 and json.loads(body)["type"].endswith("key-missing")
    finally:
        fresh.stop()


def test_a_bad_instance_config_fails_at_start(server: PluginServer) -> None:
    # A config Kong sends is the plugin's (test_required_and_5xx_release proves a good one
    # takes effect, on both hosts); a bad one fails StartInstance, loudly.
    with pytest.raises(RuntimeError, match="redis"):
        server.call(
            "plugin.StartInstance",
            {"Name": "idempotency", "Config": json.dumps({"redis_url": "nope://"})},
        )


# `serve`'s own side of the contract: what it does when the plugin unsets buffering.


class HeldUpstream(_Server):
    """Answers with a first chunk, then holds the rest until `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"5\r\nfirst\r\n")
                self.wfile.flush()
                outer.release.wait(30)
                self.wfile.write(b"4\r\nlast\r\n0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)


def test_serve_streams_what_the_plugin_will_not_store(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Without a key the plugin stores nothing and unsets buffering (Kong then streams the
    # answer): the first chunk reaches the client while the upstream still holds the rest.
    upstream = HeldUpstream()
    serve = ServeHost(upstream.url, {"redis_url": redis_url}, tmp_path_factory)
    try:
        with (
            httpx.Client(base_url=serve.process.url, timeout=10) as client,
            client.stream("POST", "/api/held", content=b"{}") as answer,
        ):
            chunks = answer.iter_raw()
            assert answer.status_code == 200 and next(chunks) == b"first"
            upstream.release.set()
            assert b"".join(chunks) == b"last"
    finally:
        upstream.release.set()
        serve.stop()
        upstream.close()
