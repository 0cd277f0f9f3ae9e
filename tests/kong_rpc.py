"""Kong's side of the external plugin protocol, to drive kong-pdk's real plugin server.

What Kong 3.9.1 does (kong/runloop/plugin_servers, msgpack-RPC over a unix socket):
`plugin.StartInstance {Name, Config: <JSON>}` once per plugin entity (and nginx worker),
the config carrying `route_id`/`service_id`/`__plugin_id`/`__seq__`
(plugins_iterator.lua:164-187); per phase `plugin.HandleEvent {InstanceId, EventName}`;
while the answer's `Data` is a PDK call `{Method, Args}`, Kong runs it and answers with
`plugin.Step` (or the typed variant for that method) until `Data` is "ret"
(rpc/mp_rpc.lua:264-298): one round trip per PDK call, plus the HandleEvent. Each call
takes a connection from nginx's keepalive pool and puts it back (mp_rpc.lua:176, 212), so
calls reuse idle connections. Kong never sends `plugin.StepError`: `call_pdk_method`
keeps only a PDK function's first return value, so a failing call answers nil
(mp_rpc.lua:113-166). Header maps go back with every value wrapped in a list, raw bodies
as msgpack binary. `kong.response.exit` in the access phase ends the event: Kong runs each
access handler in a coroutine with `ctx.delay_response` set (kong/init.lua:370, 393-394),
and exit stores the response and yields that coroutine (kong/pdk/response.lua:975-984),
which is never resumed: no Step follows the exit (kong-pdk drops the event when it sends
an exit, kong_pdk/server.py `_step`). Kong keeps instance ids across a plugin-server
restart and starts a new instance only when told "no plugin instance"
(mp_rpc.lua:301-320); a changed config gets a new instance and the old one is closed with
`plugin.CloseInstance` (plugin_servers/plugin.lua:237-303).

`MiniKong` runs one request through the plugin's phases like Kong does: access; then, if
the response is buffered (any plugin with a `response` phase turns it on,
plugins_iterator.lua:391-400, unless `ngx.ctx.buffered_proxying` is unset), the upstream
and the response phase, which also runs when the upstream failed, with `get_source()`
"error" (kong/init.lua:1243-1252 Kong.response, 1855-1860 Kong.handle_error); then log, if
the plugin has one. Every RPC call is counted in `trips`.
"""

from __future__ import annotations

import functools
import itertools
import json
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack

from .harness import REPO

PLUGIN = REPO / "plugins" / "idempotency.py"
# The Step variant Kong calls for a method's result (kong/runloop/plugin_servers).
TYPED_STEPS = {
    "kong.request.get_headers": "plugin.StepMultiMap",
    "kong.response.get_headers": "plugin.StepMultiMap",
    "kong.service.response.get_headers": "plugin.StepMultiMap",
    "kong.request.get_query": "plugin.StepMultiMap",
    "kong.client.get_consumer": "plugin.StepConsumer",
    "kong.router.get_route": "plugin.StepRoute",
    "kong.router.get_service": "plugin.StepService",
}
TERMINAL = {"kong.response.exit", "kong.response.error"}
# nginx's client_body_buffer_size default: a larger body goes to a temp file, and
# kong.request.get_raw_body() answers nil for it (kong/pdk/request.lua:714-727 at 3.9.1).
CLIENT_BODY_BUFFER_SIZE = 8192


@functools.cache
def upstream_client() -> httpx.Client:
    """One client for every MiniKong, as nginx keeps its upstream connections: a client
    built per request would cost more than the plugin's round trips being measured."""
    return httpx.Client(timeout=30)


def plugin_info() -> dict[str, Any]:
    """What Kong learns from pluginserver_<name>_query_cmd (plugin_servers/process.lua:46)."""
    out = subprocess.run(
        [sys.executable, str(PLUGIN), "--dump"], capture_output=True, check=True, timeout=30
    )
    (info,) = json.loads(out.stdout)
    return dict(info)


class PluginServer:
    """The plugin run as Kong's pluginserver_*_start_cmd runs it: its own dedicated server."""

    def __init__(self, prefix: Path, log: Path) -> None:
        self.prefix, self.log_path = prefix, log
        self.socket = prefix / "idempotency.sock"
        self._ids = itertools.count(1)
        self.trips = 0  # RPC calls made, each one request and one answer
        self.rpc_seconds = 0.0  # wall time spent in them (summed over threads)
        self._idle: list[socket.socket] = []  # Kong's keepalive pool for this socket
        self._pool_lock = threading.Lock()
        self.start()

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(PLUGIN), "--kong-prefix", str(self.prefix), "--socket-name", self.socket.name],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"plugin server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.02)

    def restart(self) -> None:
        """As Kong respawns a server that died (plugin_servers/process.lua:136-182)."""
        self.stop()
        self.socket.unlink(missing_ok=True)
        self.start()

    def threads(self) -> int:
        return len(list(Path(f"/proc/{self.process.pid}/task").iterdir()))

    def connection(self) -> socket.socket:
        """An idle pooled connection, else a new one (ngx.socket.connect, mp_rpc.lua:176).

        nginx closes a pooled connection the peer closed while it was idle, so one that
        reads as ready (EOF) is dropped, not used.
        """
        while True:
            with self._pool_lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(15)  # a server that never answers fails the test, never hangs it
                conn.connect(str(self.socket))
                return conn
            if not select.select([conn], [], [], 0)[0]:
                return conn
            conn.close()

    def call(self, method: str, *args: Any) -> Any:
        msgid = next(self._ids)
        self.trips += 1
        started = time.perf_counter()
        conn = self.connection()
        try:
            conn.sendall(msgpack.packb([0, msgid, method, list(args)]))
            kind, answer_id, error, result = self._answer(conn, method)
        except BaseException:
            conn.close()
            raise
        finally:
            self.rpc_seconds += time.perf_counter() - started
        assert kind == 1 and answer_id == msgid
        with self._pool_lock:  # setkeepalive once the answer is read (mp_rpc.lua:212)
            self._idle.append(conn)
        if error:
            raise RuntimeError(f"{method}: {error}")
        return result

    @staticmethod
    def _answer(conn: socket.socket, method: str) -> Any:
        unpacker = msgpack.Unpacker(strict_map_key=False)
        while True:
            data = conn.recv(65536)
            if not data:
                raise ConnectionError(f"plugin server closed the connection during {method}")
            unpacker.feed(data)
            for answer in unpacker:
                return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self._log.close()
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


@dataclass
class Request:
    """What Kong knows of one request, and what it learns while proxying it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    query: str = ""
    client_ip: str = "203.0.113.7"
    route: dict[str, Any] = field(default_factory=lambda: {"id": "3f8a", "name": "writes"})
    service: dict[str, Any] = field(default_factory=lambda: {"id": "9c1d", "name": "api"})
    shared: dict[str, Any] = field(default_factory=dict)
    exit: tuple[int, bytes, dict[str, Any]] | None = None
    status: int = 0
    source: str = "service"
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    buffered: bool = False  # ngx.ctx.buffered_proxying
    nil: frozenset[str] = frozenset()  # PDK calls that fail here (Kong answers nil)


def _wrap(headers: dict[str, str]) -> dict[str, list[str]]:
    return {k.lower(): [v] for k, v in headers.items()}


def _raw_body(req: Request, max_allowed_file_size: int | None = None) -> bytes | None:
    """kong.request.get_raw_body: a body over the buffer is in a file, read only on request."""
    if len(req.body) <= CLIENT_BODY_BUFFER_SIZE:
        return req.body
    if max_allowed_file_size is None or max_allowed_file_size < 0:
        return None  # "request body did not fit into client body buffer"
    if 0 < max_allowed_file_size < len(req.body):
        return None  # "request body file too big"
    return req.body


def _set_ctx(req: Request, key: str, value: Any) -> None:
    if key == "buffered_proxying":
        req.buffered = bool(value)


def pdk(req: Request, method: str, args: list[Any]) -> Any:
    """Kong's answer to one PDK call, for the calls a plugin may make here."""
    calls: dict[str, Callable[[], Any]] = {
        "kong.request.get_method": lambda: req.method,
        "kong.request.get_path": lambda: req.path,
        "kong.request.get_raw_query": lambda: req.query,
        "kong.request.get_headers": lambda: _wrap(req.headers),
        "kong.request.get_header": lambda: _wrap(req.headers).get(args[0].lower(), [None])[0],
        "kong.request.get_raw_body": lambda: _raw_body(req, *args[:1]),
        "kong.nginx.get_var": lambda: (
            f"{req.method} {req.path}{'?' + req.query if req.query else ''} HTTP/1.1"
            if args[0] == "request"
            else None
        ),
        "kong.nginx.set_ctx": lambda: _set_ctx(req, *[*args, None][:2]),
        "kong.router.get_route": lambda: req.route,
        "kong.router.get_service": lambda: req.service,
        "kong.client.get_consumer": lambda: None,
        "kong.client.get_ip": lambda: req.client_ip,
        "kong.ctx.shared.get": lambda: req.shared.get(args[0]),
        "kong.ctx.shared.set": lambda: req.shared.__setitem__(args[0], args[1]),
        "kong.response.get_status": lambda: req.status,
        "kong.response.get_source": lambda: req.source,
        "kong.response.get_headers": lambda: _wrap(req.response_headers),
        "kong.service.response.get_raw_body": lambda: req.response_body,
    }
    if method not in calls:
        raise LookupError(f"PDK method {method} is not offered here")
    if method in req.nil:
        return None
    return calls[method]()


class MiniKong:
    """One plugin entity on a route, and requests proxied to an upstream through it."""

    def __init__(
        self,
        server: PluginServer,
        config: dict[str, Any],
        upstream: str,
        route: dict[str, Any] | None = None,
        phases: frozenset[str] | None = None,
    ) -> None:
        self.server = server
        self.upstream = upstream
        self.route = route or {"id": "3f8a7c1e-2b4d-4e6f-8a1b-9c0d1e2f3a4b", "name": "writes"}
        self.phases = phases or frozenset(plugin_info()["Phases"])
        self.seq = 0
        self.config = config
        self.instance: int | None = None
        self.start()

    def start(self) -> None:
        # Kong's conf for an instance: the plugin's config plus the entity it is attached to
        # and a sequence number (plugins_iterator.lua:164-187).
        self.seq += 1
        conf = self.config | {
            "route_id": self.route["id"],
            "service_id": None,
            "__plugin_id": "5b1c2d3e-0000-4000-8000-" + self.route["id"][-12:],
            "__seq__": self.seq,
        }
        started = self.server.call(
            "plugin.StartInstance", {"Name": "idempotency", "Config": json.dumps(conf)}
        )
        self.instance = started["Id"]

    def reconfigure(self, config: dict[str, Any]) -> int | None:
        """A changed plugin config: a new instance, then the old one closed (plugin.lua:281-300)."""
        old, self.config = self.instance, config
        self.start()
        self.server.call("plugin.CloseInstance", old)
        return old

    def phase(self, name: str, req: Request) -> None:
        if name not in self.phases:
            return
        try:
            answer = self.server.call(
                "plugin.HandleEvent", {"InstanceId": self.instance, "EventName": name}
            )
        except RuntimeError as exc:
            if "no plugin instance" not in str(exc).lower():
                raise
            self.start()  # mp_rpc.lua:312-316: reset, start a new instance, handle again
            answer = self.server.call(
                "plugin.HandleEvent", {"InstanceId": self.instance, "EventName": name}
            )
        event, data = answer["EventId"], answer["Data"]
        while data != "ret":
            method, args = data["Method"], list(data.get("Args") or [])
            if method in TERMINAL:
                # The exit yields the plugin's coroutine, which Kong never resumes: the
                # event ends here, with no Step (kong/pdk/response.lua:975-984).
                status, body, headers = [*args, None, None][:3]
                body = body.encode() if isinstance(body, str) else (body or b"")
                req.exit, req.source = (int(status), body, dict(headers or {})), "exit"
                return
            result = pdk(req, method, args)
            step = TYPED_STEPS.get(method, "plugin.Step")
            data = self.server.call(step, {"EventId": event, "Data": result})["Data"]

    def handle(self, req: Request) -> tuple[int, dict[str, Any], bytes]:
        req.buffered = "response" in self.phases
        if req.body and "transfer-encoding" not in {k.lower() for k in req.headers}:
            req.headers = {**req.headers, "Content-Length": str(len(req.body))}
        self.phase("access", req)
        if req.exit is None:
            try:
                url = self.upstream + req.path + ("?" + req.query if req.query else "")
                answer = upstream_client().request(
                    req.method, url, content=req.body, headers=req.headers
                )
                req.status, req.response_body = answer.status_code, answer.content
                req.response_headers = dict(answer.headers)
            except httpx.TransportError:
                req.status, req.source = 502, "error"
                req.response_body = (
                    b'{"message":"An invalid response was received from the upstream server"}'
                )
                req.response_headers = {"content-type": "application/json; charset=utf-8"}
            if req.buffered:
                self.phase("response", req)
        self.phase("log", req)
        if req.exit is not None:
            status, body, headers = req.exit
            return status, headers, body
        return req.status, req.response_headers, req.response_body
